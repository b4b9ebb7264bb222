"""Shared by the review tests: synthetic faces, a server process on a free port, headless Chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"


def synthetic_face(seed: int, size: int = 48, mouth: int = 0) -> np.ndarray:
    """A drawn gray face (head, eyes, a mouth shape chosen by ``mouth``) as uint8 (size, size)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    im = Image.new("L", (size, size), int(rng.integers(15, 70)))
    d = ImageDraw.Draw(im)
    s = size / 48
    jitter = rng.integers(-2, 3, 4) * s
    d.ellipse([8 * s + jitter[0], 3 * s + jitter[1], 40 * s + jitter[2], 46 * s + jitter[3]], fill=int(rng.integers(140, 215)))
    for x in (15, 28):
        d.ellipse([x * s, 16 * s, (x + 5) * s, 21 * s], fill=int(rng.integers(10, 50)))
        d.line([x * s, 12 * s, (x + 6) * s, (12 + rng.integers(-2, 3)) * s], fill=40, width=max(1, int(s)))
    kind = mouth % 4
    if kind == 0:      # smile
        d.arc([15 * s, 24 * s, 33 * s, 38 * s], 20, 160, fill=35, width=max(2, int(2 * s)))
    elif kind == 1:    # frown
        d.arc([15 * s, 31 * s, 33 * s, 42 * s], 200, 340, fill=35, width=max(2, int(2 * s)))
    elif kind == 2:    # open mouth
        d.ellipse([20 * s, 28 * s, 28 * s, 38 * s], fill=25)
    else:              # flat
        d.line([17 * s, 33 * s, 31 * s, 33 * s], fill=35, width=max(2, int(2 * s)))
    noise = rng.normal(0, 6, (size, size))
    return np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def review_server(*args: str, env: dict | None = None, timeout: float = 60.0):
    """``moodcam review ARGS --port P`` in a subprocess; yields (base_url, first output lines)."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "edge", "review", *args, "--port", str(port)]
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"review server exited with {proc.returncode}:\n{log.read()}")
            try:
                log.seek(0)
                out = log.read()
                if "open http" in out:
                    token = out.split("?token=")[1].split()[0] if "?token=" in out else None
                    headers = {"x-moodcam-token": token} if token else {}
                    if httpx.get(base + "/api/info", headers=headers, timeout=2).status_code in (200, 401):
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"review server did not answer on {base}:\n{out}")
            time.sleep(0.2)
        yield base, out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def chromium_available() -> bool:
    return bool(shutil.which("chromedriver") or Path("/usr/bin/chromedriver").exists())


@contextmanager
def chromium(width: int = 1440, height: int = 900):
    """Real headless Chromium through Debian's chromedriver, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="moodcam-chrome-")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    opts.binary_location = binary
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


MODEL_SHA = "5eed" * 16


def fill_store(state_dir: Path, n: int = 21, t0: float = 1_795_000_000.0, seed: int = 0,
               scenes: bool = False) -> list[int]:
    """``n`` synthetic faces logged through the real store: labels cycle through LABELS, confidences
    spread over 0.2..0.95, five seconds apart, three faces per track; with ``scenes``, every other
    face with a scene thumbnail. Returns their ids."""
    from edge.contracts.labels import LABELS
    from edge.store.database import Store
    from edge.store.records import FaceRecord

    rng = np.random.default_rng(seed)
    ids = []
    with Store(state_dir) as store:
        for i in range(n):
            label = LABELS[i % len(LABELS)]
            confidence = float(0.2 + 0.75 * ((i * 37) % n) / max(1, n - 1))
            rest = rng.dirichlet(np.ones(len(LABELS) - 1)) * (1 - confidence)
            others = iter(rest)
            probs = {l: (confidence if l == label else float(next(others))) for l in LABELS}
            record = FaceRecord(ts=t0 + 5 * i, frame=10 * i, track=i // 3, box=(40, 30, 64, 64), label=label,
                                confidence=confidence, probs=probs, model_sha256=MODEL_SHA, source="test")
            scene = np.full((120, 160, 3), 40 + 10 * (i % 7), np.uint8) if scenes and i % 2 == 0 else None
            ids.append(store.log_face(record, synthetic_face(seed * 1000 + i, 48, i), scene))
    return ids
