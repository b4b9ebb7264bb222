"""Download picture URLs politely and keep only real, new pictures.

One function per step: :func:`fetch` (HTTP with timeouts, retries with backoff, a size cap and a
per-host rate limit), :func:`check_picture` (content type, decodes with Pillow, content hash and
perceptual hash), :class:`SeenPictures` (exact and near duplicates across the whole output), and
:class:`Manifest` (one ``manifest.jsonl`` per phrase folder: a re-run resumes and never fetches a
URL twice).
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from edge.capture.pictures import NotAPicture, open_picture

USER_AGENT = "moodcam-scraper/0.1 (research data set; respects robots and rate limits)"
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


@dataclass(frozen=True)
class DownloadParams:
    timeout: float = 15.0          # seconds for the whole download of one picture
    connect_timeout: float = 5.0
    retries: int = 2               # further tries after a network error, a 429 or a 5xx
    backoff: float = 1.0           # seconds before the first retry, doubled each time
    max_bytes: int = 10_000_000    # larger pictures are refused (a face photo is well below this)
    min_side: int = 64             # smaller pictures (icons, thumbnails) are refused
    workers: int = 8               # concurrent downloads
    per_host_interval: float = 0.5  # seconds between two requests to the same host
    near_duplicate_bits: int = 4   # perceptual-hash distance under which two pictures are the same (-1: off)


class Refused(Exception):
    """Not kept; ``str`` is the reason recorded in the manifest. ``retry`` for transient causes."""

    def __init__(self, reason: str, retry: bool = False):
        super().__init__(reason)
        self.retry = retry


class HostRateLimit:
    """At most one request start per ``interval`` seconds per host, across threads."""

    def __init__(self, interval: float):
        self.interval = interval
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, url: str) -> None:
        host = urlparse(url).netloc
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, 0.0))
            self._next[host] = start + self.interval
        if start > now:
            time.sleep(start - now)


def _get_once(session, url: str, params: DownloadParams) -> tuple[bytes, str]:
    import requests

    started = time.monotonic()
    try:
        with session.get(url, stream=True, timeout=(params.connect_timeout, params.timeout),
                         headers={"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"}) as r:
            if r.status_code == 429 or r.status_code >= 500:
                raise Refused(f"HTTP {r.status_code}", retry=True)
            if r.status_code >= 400:
                raise Refused(f"HTTP {r.status_code}")
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype and not (ctype.startswith("image/") or ctype in ("application/octet-stream", "binary/octet-stream")):
                raise Refused(f"not a picture: content type {ctype}")
            length = r.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > params.max_bytes:
                raise Refused(f"too large: {int(length):,} bytes (cap {params.max_bytes:,})")
            body = bytearray()
            for chunk in r.iter_content(65536):
                body += chunk
                if len(body) > params.max_bytes:
                    raise Refused(f"too large: over {params.max_bytes:,} bytes (cap)")
                if time.monotonic() - started > params.timeout:
                    raise Refused(f"timeout: slower than {params.timeout:g} s", retry=True)
            return bytes(body), ctype
    except requests.exceptions.Timeout:
        raise Refused(f"timeout: no answer within {params.timeout:g} s", retry=True) from None
    except requests.exceptions.RequestException as exc:
        raise Refused(f"network error: {type(exc).__name__}", retry=True) from None


def fetch(session, url: str, params: DownloadParams, limiter: HostRateLimit | None = None) -> tuple[bytes, str]:
    """(body, content type) of ``url``; raises :class:`Refused` with the last reason."""
    if not url.startswith(("http://", "https://")):
        raise Refused(f"not an http(s) URL: {url[:60]}")
    delay = params.backoff
    for attempt in range(params.retries + 1):
        if limiter:
            limiter.wait(url)
        try:
            return _get_once(session, url, params)
        except Refused as exc:
            if not exc.retry or attempt == params.retries:
                raise
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class CheckedPicture:
    body: bytes
    sha256: str
    phash: str        # 16 hex digits
    format: str       # Pillow's format name
    width: int
    height: int


def check_picture(body: bytes, params: DownloadParams) -> CheckedPicture:
    """Decode ``body`` as the pictures ingest will read; raises :class:`Refused` when it is not one."""
    import imagehash

    try:
        im = open_picture(io.BytesIO(body))
    except NotAPicture as exc:
        raise Refused(str(exc).replace(" in <bytes>", "")) from None
    if min(im.size) < params.min_side:
        raise Refused(f"too small: {im.size[0]}x{im.size[1]} (minimum side {params.min_side})")
    return CheckedPicture(body, hashlib.sha256(body).hexdigest(), str(imagehash.phash(im)),
                          im.info.get("source_format") or "JPEG", im.size[0], im.size[1])


def phash_distances(hashes: np.ndarray, phash: int) -> np.ndarray:
    """Hamming distances (bits) between one 64-bit perceptual hash and an array of them (uint64)."""
    x = hashes ^ np.uint64(phash)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(1)


class SeenPictures:
    """Content and perceptual hashes of every kept picture, to skip exact and near duplicates."""

    def __init__(self, near_bits: int):
        self.near_bits = near_bits
        self.sha: dict[str, str] = {}
        self.urls: dict[str, str] = {}  # URL -> kept file, across every phrase folder
        self._phash_ints: list[int] = []
        self._phash_files: list[str] = []

    def add(self, sha: str, phash: str, file: str, url: str = "") -> None:
        self.sha[sha] = file
        if url:
            self.urls[url] = file
        if phash:
            self._phash_ints.append(int(phash, 16))
            self._phash_files.append(file)

    def duplicate_of(self, sha: str, phash: str) -> str | None:
        """A reason naming the kept file this picture duplicates, or None when it is new."""
        if sha in self.sha:
            return f"duplicate: same bytes as {self.sha[sha]}"
        if self.near_bits >= 0 and phash and self._phash_ints:
            bits = phash_distances(np.array(self._phash_ints, dtype=np.uint64), int(phash, 16))
            j = int(np.argmin(bits))
            if bits[j] <= self.near_bits:
                return f"near-duplicate: {int(bits[j])} bits from {self._phash_files[j]}"
        return None


@dataclass
class Manifest:
    """``manifest.jsonl``: one JSON object per URL tried (url, page, time, status, reason, hash, file)."""

    path: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        m = cls(Path(path))
        if m.path.exists():
            for n, line in enumerate(m.path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    # A line cut by a crash mid-write: ignore it, the URL is simply tried again.
                    continue
                if isinstance(entry, dict) and "url" in entry:
                    m.entries[entry["url"]] = entry
        return m

    def __contains__(self, url: str) -> bool:
        return url in self.entries

    def append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
        self.entries[entry["url"]] = entry

    def kept(self) -> list[dict]:
        return [e for e in self.entries.values() if e.get("status") == "ok"]


def write_atomically(path: Path, body: bytes) -> None:
    tmp = path.with_name("." + path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(body)
    tmp.replace(path)


def params_dict(params: DownloadParams) -> dict:
    return asdict(params)
