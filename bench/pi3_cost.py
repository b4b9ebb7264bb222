"""The Pi-3 cost model: the pipeline's own stages counted in aarch64 instructions, as Pi-3 milliseconds.

    sudo deploy/arm64-check.sh                  # once: the arm64 root in .arm64/ (15-40 min)
    .venv/bin/python bench/pi3_cost.py [--json] [--faces 3] [--schedule daemon|serial] [--config TOML] [--rss] [--fresh]

1. Each stage, through the edge's own code (gray_of; edge.vision.scan: changed_boxes, Scanner.scan_region
   of track and motion regions, Scanner.scan of a full frame and of a region round; one
   Classifier.view_probs and Classifier.probs in all views; a crop; the Tracker; ScanWorker.submit;
   Pipeline.process of the frame loop and of the old serial design) runs in
   the arm64 root of deploy/arm64-check.sh - its Python, LiteRT and dlib-bin aarch64 wheels - under
   ``qemu-aarch64 -cpu cortex-a53`` (the Pi 3's core: NEON, no dot product, so LiteRT/XNNPACK picks
   the kernels a Pi 3 runs) with bench/pi3/insncount.c, a TCG plugin that counts the guest
   instructions. bench/pi3/stages.py marks each stage's loop; a second run with 0 iterations is
   the start-up baseline that is subtracted; the rest divided by the iterations is one call.
2. Instructions become Pi-3 ms at 1.2 GHz and a cycles-per-instruction band calibrated on
   MobileNetV2 int8 (224x224), counted the same way, against XNNPACK's published 30 ms on a
   1.4 GHz Pi 3B+ with 4 threads (XNNPACK README, Feb 2022), at a 3.3-3.9x four-thread speed-up.
3. A schedule turns stage costs into a frame's time: ``daemon`` (today's: the frame loop on one core,
   detection rounds on another, simulated as Pipeline._detection_round runs them; the default) or
   ``serial`` (the old single-threaded design, for comparison). See DAEMON_ASSUMPTION and SERIAL_ASSUMPTION.

The same stage callables are timed natively here for the x86 figures beside them. Counts are
cached in .bench/pi3/counts.json by model sha, stage and parameters; --fresh counts again.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CACHE = REPO / ".bench" / "pi3"
PLUGIN_SRC = REPO / "bench" / "pi3" / "insncount.c"
STAGES_PY = REPO / "bench" / "pi3" / "stages.py"
DEFAULT_ROOT = REPO / ".arm64" / "root"
GUEST_PYTHON = "/opt/moodcam/venv/bin/python"     # deploy/install.sh's venv in the arm64 root
GUEST_DIR = ".pi3"                                  # our corner of the root: host tools and work files
QEMU = "/usr/bin/qemu-aarch64"                      # the dynamic build: the static one cannot load plugins

PI3_HZ = 1.2e9
# Calibration: XNNPACK's README (Feb 8, 2022): INT8 MobileNet v2 1.0X, RPi 3+ (BCM2837B0, 1.4 GHz),
# multi-threaded (4 cores), Raspbian Buster: 30 ms. One core does the work of 3.3-3.9 ms of it a ms.
CALIBRATION = {"model": "MobileNetV2 1.0 int8 224x224", "published_ms": 30.0, "published_hz": 1.4e9,
               "threads": 4, "speedup": (3.3, 3.9),
               "source": "XNNPACK README, Raspberry Pi table, INT8 MobileNet v2 1.0X, RPi 3+ (BCM2837B0), Feb 8 2022"}
# DESIGN.md's band. The band used is it and the calibration's together: should a new LiteRT count
# MobileNetV2 differently, the band widens rather than silently moving.
STATED_CPI = (1.05, 1.25)


class BenchError(Exception):
    """A problem the user can fix; printed as one line."""


# ------------------------------------------------------------------------------ the stages counted
@dataclass(frozen=True)
class Item:
    stage: str          # a builder in bench/pi3/stages.py
    params: tuple       # sorted (name, value) pairs
    iterations: int     # calls counted under qemu (each loop ~0.1-1 G instructions)

    @property
    def key(self) -> str:
        return self.stage + "".join(f" {k}={v}" for k, v in self.params)

    def plan(self, iterations: int | None = None) -> dict:
        return {"key": self.key, "stage": self.stage, "params": dict(self.params),
                "iterations": self.iterations if iterations is None else iterations}


def item(stage: str, iterations: int, **params) -> Item:
    return Item(stage, tuple(sorted(params.items())), iterations)


TRACK_FACES = (32, 60, 100, 160)        # face widths (px) whose track region is counted
MOTION_SIDE = 100                       # a changed area this many px square, as Scanner.plan pads and zooms it


def items_for(setup: "Setup", calibrate: bool) -> list[Item]:
    """What both schedules need: today's daemon (gray, motion, region and full scans through
    edge.vision.scan.Scanner, one classifier view, one crop, the tracker, submitting a round) and the
    old serial design (dlib on the whole frame, every face in all views), plus their whole-frame checks."""
    det = dict(width=setup.width, upsample=setup.upsample, min_face=setup.min_face)
    out = [item("gray", 20), item("motion", 20)]
    out += [item("region_track", 3, face=w) for w in TRACK_FACES]
    out += [item("region_motion", 3, side=MOTION_SIDE, min_face=setup.min_face)]
    out += [item("scan_full", 1 if setup.upsample else 2, **det)]
    out += [item("scan_round", 2, faces=3, min_face=setup.min_face)]
    out += [item("crop", 50), item("invoke", 10), item("view", 10, views=2)]
    out += [item("track_update", 200, faces=k, rounds=1) for k in (1, 2, 3)]
    out += [item("track_current", 200, faces=k, moving=1) for k in (1, 2, 3)]
    out += [item("smooth", 200), item("submit", 50)]
    out += [item("frame_main", 5, faces=3, per_frame=setup.classify_per_frame or 3, views=2)]
    # the old serial design on the same config: dlib on the whole frame inline, every face in all views
    sizes = sorted({(640, 0), (setup.width, setup.upsample)})
    out += [item("detect", 1 if upsample else 3, width=width, upsample=upsample) for width, upsample in sizes]
    out += [item("classify", 10 // setup.views or 1, views=setup.views)]
    frame = dict(width=setup.width, upsample=setup.upsample, views=setup.views, min_face=setup.min_face)
    out += [item("frame", 1 if setup.upsample else 2, detect=True, **frame), item("frame", 3, detect=False, **frame)]
    if calibrate:
        out.append(item("mobilenet_v2", 3))
    return out


# ------------------------------------------------------------------------------ inputs
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_frame():
    """A 640x480 RGB frame with three faces (skimage's astronaut, 95-115 px wide) on a textured
    background, and the boxes the detector finds in it with the defaults (the crop and tracker
    stages use those boxes). HOG's cost hardly depends on the content; this only has to be real."""
    import numpy as np
    import skimage.data
    from PIL import Image

    from edge.vision.detect import Detector, gray_of

    face = (179, 83, 88, 88)                       # where dlib finds the astronaut's face
    x, y, w, h = face
    sprite = skimage.data.astronaut()[y - h // 2 : y + h + (3 * h) // 4, x - (2 * w) // 5 : x + w + (2 * w) // 5]
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    shade = 110 + 60 * np.sin(xx / 97.0) * np.cos(yy / 71.0) + np.random.default_rng(0).normal(0, 6, (480, 640))
    frame = np.repeat(np.clip(shade, 0, 255)[..., None], 3, axis=2).astype(np.uint8)
    for slot, face_w in enumerate((95, 105, 115)):
        scale = face_w / w
        img = np.asarray(Image.fromarray(sprite).resize((round(sprite.shape[1] * scale), round(sprite.shape[0] * scale))))
        px, py = slot * 213 + (213 - img.shape[1]) // 2, 60 + 50 * slot
        frame[py : py + img.shape[0], px : px + img.shape[1]] = img
    boxes = sorted(d.box for d in Detector().detect(gray_of(frame)))
    if len(boxes) != 3:
        raise BenchError(f"the bench frame should show 3 faces to dlib, it found {len(boxes)}")
    return frame, [list(b) for b in boxes]


def build_mobilenet_v2(path: Path) -> None:
    """MobileNetV2 1.0 at 224x224, random weights, full-integer int8 with random calibration data:
    the op mix and the 300 M multiply-adds of the published figure (which used random weights too)."""
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=1000)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(converter.convert())
    tmp.replace(path)


def prepare_inputs(model: Path, calibrate: bool) -> Path:
    """.bench/pi3/inputs/: frame.npy, inputs.json (boxes), model.tflite + .json, mobilenet_v2.tflite."""
    import numpy as np

    folder = CACHE / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "frame.npy").exists():
        frame, boxes = make_frame()
        np.save(folder / "frame.npy", frame)
        (folder / "inputs.json").write_text(json.dumps({"boxes": boxes}))
    shutil.copyfile(model, folder / "model.tflite")
    shutil.copyfile(model.with_suffix(".json"), folder / "model.json")
    mnv2 = CACHE / "mobilenet_v2_int8.tflite"
    if calibrate and not mnv2.exists():
        print("building MobileNetV2 int8 (random weights) with TensorFlow: ~2 min, once", file=sys.stderr)
        # In a child: TensorFlow's converter prints pages to stdout, which is the report's.
        code = f"import sys; sys.path.insert(0, {str(REPO / 'bench')!r}); import pi3_cost; " \
               f"pi3_cost.build_mobilenet_v2(pi3_cost.Path({str(mnv2)!r}))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError("building MobileNetV2 failed (TensorFlow needed: bash deploy/dev-setup.sh), or pass "
                             f"--no-calibrate: {proc.stderr.strip().splitlines()[-1:]}")
    if calibrate:
        shutil.copyfile(mnv2, folder / "mobilenet_v2.tflite")
    return folder


# ------------------------------------------------------------------------------ counting on arm64
def build_plugin(out: Path = CACHE / "insncount.so") -> Path:
    """gcc bench/pi3/insncount.c -> .bench/pi3/insncount.so (again when the source is newer)."""
    if out.exists() and out.stat().st_mtime >= PLUGIN_SRC.stat().st_mtime:
        return out
    gcc = shutil.which("gcc")
    if not gcc:
        raise BenchError("gcc is missing (it builds the counting plugin): apt-get install gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [gcc, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(out), str(PLUGIN_SRC)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"building the plugin failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out


def check_root(root: Path) -> None:
    if not (root / GUEST_PYTHON.lstrip("/")).exists():
        raise BenchError(f"no arm64 root with moodcam installed at {root} (no {GUEST_PYTHON} there); "
                         "build it once: sudo deploy/arm64-check.sh (15-40 min), or pass --root DIR")
    if not os.access(QEMU, os.X_OK):
        raise BenchError(f"{QEMU} is missing: apt-get install qemu-user")
    if os.geteuid() != 0:
        raise BenchError("counting runs qemu in a chroot of the arm64 root: run as root (sudo)")


def install_host_tools(root: Path, plugin: Path) -> None:
    """qemu-aarch64, its x86_64 libraries and the plugin, copied into ROOT/.pi3/host: qemu then runs
    chrooted in the root, where the guest sees an arm64 Debian as / (no host /sys: with it,
    LiteRT's cpuinfo reads the x86 topology and crashes, see deploy/arm64-check.sh)."""
    host = root / GUEST_DIR / "host"
    host.mkdir(parents=True, exist_ok=True)
    ldd = subprocess.run(["ldd", QEMU], capture_output=True, text=True, check=True).stdout
    libs = [part for line in ldd.splitlines() for part in line.split() if part.startswith("/")]
    for path in [QEMU, str(plugin), *libs]:
        target = host / Path(path).name
        source = Path(path).resolve()
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
            shutil.copyfile(source, target)
            target.chmod(0o755)


PI3_CPUINFO_CORE = ("processor\t: {n}\nBogoMIPS\t: 38.40\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
                    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd03\n"
                    "CPU revision\t: 4\n\n")
PI3_CPUINFO_BOARD = "Hardware\t: BCM2835\nRevision\t: a02082\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n"


def install_fake_pi3(root: Path) -> None:
    """What a Pi 3's kernel shows of its CPU: /proc/cpuinfo (4 Cortex-A53, part 0xd03) and
    /sys/devices/system/cpu, mounted over the root's for the counting runs only. LiteRT's cpuinfo
    reads them to pick XNNPACK's kernels (its Cortex-A53 ones here); without them it cannot
    initialise, XNNPACK is not used and the count is of TFLite's built-in kernels instead."""
    fake = root / GUEST_DIR / "fake"
    (fake / "cpuinfo").parent.mkdir(parents=True, exist_ok=True)
    (fake / "cpuinfo").write_text("".join(PI3_CPUINFO_CORE.format(n=n) for n in range(4)) + PI3_CPUINFO_BOARD)
    cpu = fake / "sys" / "devices" / "system" / "cpu"
    for name in ("possible", "present", "online"):
        (cpu / name).parent.mkdir(parents=True, exist_ok=True)
        (cpu / name).write_text("0-3\n")
    for n in range(4):
        files = {"cpufreq/cpuinfo_max_freq": "1200000", "cpufreq/cpuinfo_min_freq": "600000",
                 "topology/physical_package_id": "0", "topology/core_id": str(n),
                 "topology/core_siblings_list": "0-3", "topology/thread_siblings_list": str(n),
                 "topology/cluster_id": "0", "topology/cluster_cpus_list": "0-3"}
        for rel, text in files.items():
            (cpu / f"cpu{n}" / rel).parent.mkdir(parents=True, exist_ok=True)
            (cpu / f"cpu{n}" / rel).write_text(text + "\n")


def install_work(root: Path, inputs: Path) -> Path:
    """A fresh copy of this checkout's edge/ package, stages.py and the inputs into ROOT/.pi3/work:
    the guest imports edge from there (PYTHONPATH), so the code counted is the code checked out."""
    work = root / GUEST_DIR / "work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(REPO / "edge", work / "edge", ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copyfile(STAGES_PY, work / "stages.py")
    shutil.copytree(inputs, work / "inputs")
    return work


def qemu_command(root: Path, plan_name: str, counts_name: str, result_name: str) -> list[str]:
    guest = f"/{GUEST_DIR}"
    host = f"{guest}/host"
    inner = [f"{host}/ld-linux-x86-64.so.2", "--library-path", host, f"{host}/qemu-aarch64",
             "-cpu", "cortex-a53", "-plugin", f"{host}/insncount.so,out={guest}/work/{counts_name}",
             "-E", "PYTHONPATH=" + f"{guest}/work", "-E", "PYTHONDONTWRITEBYTECODE=1",
             "-E", "OPENBLAS_NUM_THREADS=1", "-E", "OMP_NUM_THREADS=1",
             GUEST_PYTHON, f"{guest}/work/stages.py", "--inputs", f"{guest}/work/inputs",
             "--plan", f"{guest}/work/{plan_name}", "--mode", "count", "--out", f"{guest}/work/{result_name}"]
    # A private mount namespace: the root's /proc (qemu reads /proc/self/maps) and the Pi 3's CPU
    # (install_fake_pi3) over the host's vanish with it.
    script = ('r="$1" && shift && mount -t proc proc "$r/proc" && mkdir -p "$r/sys" '
              f'&& mount --bind "$r/{GUEST_DIR}/fake/cpuinfo" "$r/proc/cpuinfo" '
              f'&& mount --bind "$r/{GUEST_DIR}/fake/sys" "$r/sys" && exec chroot "$r" "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root), *inner]


def parse_counts(path: Path) -> tuple[dict[int, int], int]:
    """The plugin's file: {marker id: all threads' count there}, total at exit."""
    marks, total = {}, None
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["mark"]:
            marks[int(parts[1])] = int(parts[3])
        elif parts[:1] == ["total"]:
            total = int(parts[1])
    if total is None:
        raise BenchError(f"{path}: the counting plugin wrote no total (the guest crashed?)")
    return marks, total


def count_on_arm64(root: Path, items: list[Item], inputs: Path, plugin: Path) -> dict[str, dict]:
    """Instructions per call of each item: the marked loop of a run with the iterations, minus the
    same marked stretch of an identical run with 0 iterations (the start-up baseline), / iterations."""
    install_host_tools(root, plugin)
    install_fake_pi3(root)
    work = install_work(root, inputs)
    runs = {}
    for name, iterations in (("full", None), ("baseline", 0)):
        (work / f"plan-{name}.json").write_text(json.dumps([i.plan(iterations) for i in items]))
        cmd = qemu_command(root, f"plan-{name}.json", f"counts-{name}.txt", f"result-{name}.json")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
        runs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, proc in runs.items():          # the two runs side by side: one core each
        output = proc.communicate()[0]
        if proc.returncode != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise BenchError(f"the {name} run under qemu-aarch64 failed (exit {proc.returncode}): {tail}")
    (full, full_total), (base, base_total) = (parse_counts(work / f"counts-{n}.txt") for n in ("full", "baseline"))
    notes = json.loads((work / "result-full.json").read_text())
    out = {}
    for i, it in enumerate(items):
        loop = (full[2 * i + 1] - full[2 * i]) - (base[2 * i + 1] - base[2 * i])
        out[it.key] = {"instructions": round(loop / it.iterations), "iterations": it.iterations,
                       "note": notes[i]["note"]}
    counted = sum(v["instructions"] * v["iterations"] for v in out.values())
    out["_check"] = {"marked": counted, "total_difference": full_total - base_total,
                     "baseline_total": base_total}
    return out


# ------------------------------------------------------------------------------ the cache
def edge_sha() -> str:
    """A hash of edge/*.py: a cached count made with other code is flagged, not silently reused."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "edge").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(it: Item, model_sha: str, inputs: Path) -> str:
    subject = model_sha if it.stage != "mobilenet_v2" else sha256_bytes((inputs / "mobilenet_v2.tflite").read_bytes())
    frame_sha = sha256_bytes((inputs / "frame.npy").read_bytes())[:16]
    return f"{subject[:16]} {frame_sha} {it.key} x{it.iterations}"


def load_cache() -> dict:
    path = CACHE / "counts.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_cache(cache: dict) -> None:
    path = CACHE / "counts.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    tmp.replace(path)


def counts(items: list[Item], model_sha: str, inputs: Path, root: Path, fresh: bool) -> tuple[dict, dict]:
    """{item key: instructions per call}, and what the run did (counted or cached, the check)."""
    cache = load_cache()
    keys = {it.key: cache_key(it, model_sha, inputs) for it in items}
    missing = [it for it in items if fresh or keys[it.key] not in cache]
    info = {"counted": [it.key for it in missing], "cached": len(items) - len(missing), "check": None,
            "stale": []}
    if missing:
        check_root(root)
        started = time.monotonic()
        result = count_on_arm64(root, missing, inputs, build_plugin())
        info["check"] = result.pop("_check")
        info["count_s"] = round(time.monotonic() - started, 1)
        code = edge_sha()
        for it in missing:
            cache[keys[it.key]] = result[it.key] | {"edge_sha": code, "date": date.today().isoformat()}
        save_cache(cache)
    code = edge_sha()
    info["stale"] = [it.key for it in items if cache[keys[it.key]].get("edge_sha") != code]
    return {it.key: cache[keys[it.key]] for it in items}, info


# ------------------------------------------------------------------------------ timing on x86
def time_on_host(items: list[Item], inputs: Path) -> dict[str, float]:
    """Median ms per call of the same stage callables in this venv (bench/pi3/stages.py --mode time)."""
    with tempfile.TemporaryDirectory() as tmp:
        plan, out = Path(tmp) / "plan.json", Path(tmp) / "out.json"
        plan.write_text(json.dumps([it.plan() for it in items]))
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        cmd = [sys.executable, str(STAGES_PY), "--inputs", str(inputs), "--plan", str(plan), "--mode", "time",
               "--out", str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"timing the stages here failed: {proc.stderr.strip().splitlines()[-1:]}")
        return {r["key"]: r["ms"] for r in json.loads(out.read_text())}


# ------------------------------------------------------------------------------ the schedules
DEFAULT_CAMERA_FPS = 30.0    # camera.fps = 0 means "as fast as frames come": a Pi camera at 640x480 gives 30
MOTION_SHIFT = 0.25          # a moving face moves this many face widths between two rounds' frames


@dataclass(frozen=True)
class Setup:
    every_n: int            # detector.every_n_frames: a round starts at most every Nth frame
    width: int              # detector.detect_width (full scans)
    upsample: int           # detector.upsample (full scans)
    min_face: int           # detector.min_face_px
    views: int              # views a face has (2 = flip TTA; x3 with tta_zoom on every frame)
    classify_per_frame: int  # performance.classify_per_frame (0 = every face)
    views_across_frames: bool
    region_scans: bool
    full_scan_s: float
    detection: str          # performance.detection
    camera_fps: float


def setup_from(config, camera_fps: float | None = None) -> Setup:
    c, d, p = config.classifier, config.detector, config.performance
    views = (2 if c.tta else 1) * (3 if c.tta_zoom > 0 and not c.zoom_across_frames else 1)
    fps = camera_fps or config.camera.fps or DEFAULT_CAMERA_FPS
    return Setup(d.every_n_frames, d.detect_width, d.upsample, d.min_face_px, views, p.classify_per_frame,
                 p.views_across_frames, p.region_scans, p.full_scan_s, p.detection, fps)


# ---- the old serial design: one thread, detection inline every Nth frame, every face in all views
def frame_costs(cost: dict[str, float], setup: Setup, faces: int) -> dict[str, dict[str, float]]:
    """Per stage, its cost on a detection frame and on the other frames of the serial design."""
    det = f"detect upsample={setup.upsample} width={setup.width}"
    per_face = {"crop": cost["crop"], "classify": cost[f"classify views={setup.views}"], "smooth": cost["smooth"]}
    rows = {"gray": (cost["gray"], cost["gray"]), "detect": (cost[det], 0.0),
            "track": (cost[f"track_update faces={faces} rounds=1"], cost[f"track_current faces={faces} moving=1"])}
    rows |= {name: (value * faces, value * faces) for name, value in per_face.items()}
    rows["pipeline"] = (cost["pipeline"], cost["pipeline"])
    return {name: {"detection_frame": d, "other_frame": o} for name, (d, o) in rows.items()}


def serial(stages: dict[str, dict[str, float]], every_n: int) -> dict:
    """The old design: one thread, a frame's time is the sum of its stages; every Nth frame also
    runs dlib on the whole frame, and that frame is the worst."""
    detection = sum(s["detection_frame"] for s in stages.values())
    other = sum(s["other_frame"] for s in stages.values())
    return {"per_frame": (detection + (every_n - 1) * other) / every_n, "worst_frame": detection,
            "detection_frame": detection, "other_frame": other}


def serial_overhead(cost: dict[str, float], setup: Setup) -> dict[str, float]:
    """Pipeline.process's own work beyond the stages (timers, dataclasses, lists): the measured
    3-face frame without detection minus its stages, never below 0."""
    frame = (f"frame detect=False min_face={setup.min_face} upsample={setup.upsample} views={setup.views} "
             f"width={setup.width}")
    parts = frame_costs(cost | {"pipeline": 0.0}, setup, 3)
    return cost | {"pipeline": max(0.0, cost[frame] - sum(s["other_frame"] for s in parts.values()))}


def serial_plan(cost: dict[str, float], setup: Setup, faces: int, convert) -> dict:
    stages = frame_costs(serial_overhead(cost, setup), setup, faces)
    out = serial({n: {k: convert(v) for k, v in d.items()} for n, d in stages.items()}, setup.every_n)
    per_stage = {n: convert((d["detection_frame"] + (setup.every_n - 1) * d["other_frame"]) / setup.every_n)
                 for n, d in stages.items()}
    return out | {"per_stage": per_stage, "fps": min(1e3 / out["per_frame"], setup.camera_fps)}


SERIAL_ASSUMPTION = ("serial (the old design): one thread; every frame gray, the tracks, every face cropped and "
                     "classified in all its views; every Nth frame also dlib on the whole frame at detect_width "
                     "and upsample, and that frame is the worst")


# ---- today's daemon: a frame loop on one core, detection rounds on another
def moving_scene(faces: int, face_px: int, shift: float):
    """Two gray 640x480 frames a round apart: ``faces`` head-and-shoulders sprites (the astronaut,
    face ``face_px`` wide) side by side, moved ``shift`` px to the right in the second; and the faces'
    boxes in the first (the tracks' last detections)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    x, y, w, h = 179, 83, 88, 88                       # where dlib finds the astronaut's face
    sprite = skimage.data.astronaut()[y - h // 2 : y + h + (3 * h) // 4, x - (2 * w) // 5 : x + w + (2 * w) // 5]
    scale = face_px / w
    img = np.asarray(Image.fromarray(sprite).resize((round(sprite.shape[1] * scale), round(sprite.shape[0] * scale))))
    gray_sprite = np.asarray(Image.fromarray(img).convert("L"))
    fx, fy = round((2 * w // 5) * scale), round((h // 2) * scale)       # the face's corner inside the sprite
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    shade = 110 + 60 * np.sin(xx / 97.0) * np.cos(yy / 71.0) + np.random.default_rng(0).normal(0, 6, (480, 640))
    background = np.clip(shade, 0, 255).astype(np.uint8)
    frames, boxes = [], []
    for dx in (0.0, shift):
        frame = background.copy()
        for i in range(faces):
            cx = (i + 0.5) * 640 / faces + dx
            px, py = round(cx - fx - face_px / 2), round(200 - fy - face_px / 2)
            x0, y0 = max(0, px), max(0, py)
            x1, y1 = min(640, px + gray_sprite.shape[1]), min(480, py + gray_sprite.shape[0])
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = gray_sprite[y0 - py : y1 - py, x0 - px : x1 - px]
            if dx == 0.0:
                boxes.append((px + fx, py + fy, face_px, face_px))
        frames.append(frame)
    return frames[0], frames[1], boxes


def round_regions(config, faces: int, face_px: int) -> list[dict]:
    """The regions edge.vision.scan.Scanner.plan scans in a region round of ``moving_scene``."""
    from edge.vision.detect import Detector, shrunk
    from edge.vision.scan import MOTION_DOWNSCALE, Scanner

    before, after, boxes = moving_scene(faces, face_px, max(4.0, MOTION_SHIFT * face_px))
    scanner = Scanner(Detector(config.detector), config.detector, config.performance)
    scanner._previous = shrunk(before, 1.0 / MOTION_DOWNSCALE)
    return [{"why": r.why, "box": list(r.box), "scale": round(r.scale, 3),
             "px": max(1, round(r.box[2] * r.scale)) * max(1, round(r.box[3] * r.scale))}
            for r in scanner.plan(after, boxes)]


def region_fit(cost: dict[str, float], notes: dict[str, str]) -> tuple[float, float]:
    """A region scan's cost as a + b x scanned pixels, least squares over the counted region scans."""
    xs, ys = [], []
    for key, value in cost.items():
        if key.startswith(("region_track", "region_motion")):
            xs.append(float(notes[key].rsplit("= ", 1)[1].split()[0]))
            ys.append(value)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    return my - b * mx, b


def simulate(frame_ms: float, region_ms: float, full_ms: float, setup: Setup, seconds: float = 120.0) -> dict:
    """The frame loop and the detection thread(s) over ``seconds``, as Pipeline._detection_rounds runs
    them: a frame takes the finished rounds and, when N frames have passed since the last start and the
    region thread is free, starts the next round. One thread ("thread"): a round is a full scan when
    full_scan_s has passed since the last one. Two ("split"): the region thread does region rounds
    only, and a full scan starts on the other thread when full_scan_s has passed and it is free."""
    split = split_layout(setup)
    frames = int(seconds * 1e3 / frame_ms)
    busy_until = {"region": None, "full": None}
    next_full, last_start = 0.0, -(10 ** 9)
    rounds = []                                    # [start ms, duration ms, full, applied at frame start ms]
    pending = {"region": None, "full": None}
    for i in range(frames):
        t = i * frame_ms
        for core, until in busy_until.items():
            if until is not None and until <= t:
                pending[core][3] = t
                busy_until[core] = pending[core] = None
        if split and busy_until["full"] is None and t / 1e3 >= next_full:
            next_full = t / 1e3 + setup.full_scan_s
            pending["full"] = [t, full_ms, True, None]
            rounds.append(pending["full"])
            busy_until["full"] = t + full_ms
        if i - last_start >= setup.every_n and busy_until["region"] is None:
            full = not split and (not setup.region_scans or t / 1e3 >= next_full)
            if full:
                next_full = t / 1e3 + setup.full_scan_s
            duration = full_ms if full else region_ms
            pending["region"] = [t, duration, full, None]
            rounds.append(pending["region"])
            busy_until["region"], last_start = t + duration, i
    done = [r for r in rounds if r[3] is not None]
    end = max((r[3] for r in done), default=1.0)
    region_done = [r for r in done if not r[2] or not split]
    full_done = [r for r in done if r[2]]
    busy = {"region": sum(r[1] for r in region_done) / end, "full": sum(r[1] for r in full_done) / end if split else 0.0}
    span = (done[-1][0] - done[0][0]) / 1e3 if len(done) > 1 else seconds
    # A moving face that appears just after round r started is found by the next region round
    # (its motion; conservatively not by a full one: upsample 1 finds faces from ~40 px only), is
    # applied on the first frame after that round ends and classified in that frame.
    # With full scans apart, only the region thread's rounds decide it.
    moving = []
    finders = [q for q in done if not q[2] or not setup.region_scans]
    for start in (finders if split else done)[:-1]:
        found = next((q for q in finders if q[0] > start[0]), None)
        if found is not None:
            moving.append(found[3] + frame_ms - start[0])
    still = []                                      # a face that sits still: only a full scan finds it
    fulls = [q for q in done if q[2]]
    for a, b in zip(fulls, fulls[1:]):
        still.append(b[3] + frame_ms - a[0])
    return {"rounds_per_s": round((len(done) - 1) / span, 2) if len(done) > 1 else 0.0,
            "frames_per_round": round(span * 1e3 / (frame_ms * (len(done) - 1)), 2) if len(done) > 1 else 0.0,
            "region_rounds_per_s": round((len(done) - len(fulls)) / (end / 1e3), 2),
            "full_scans_per_s": round(len(fulls) / (end / 1e3), 3),
            "busy": round(busy["region"] + busy["full"] if not split else max(busy.values()), 3),
            "busy_region_core": round(busy["region"], 3), "busy_full_core": round(busy["full"], 3),
            "cores": 3 if split else 2, "full_rounds_share": round(len(fulls) / max(1, len(done)), 3),
            "appear_to_classified_ms": round(max(moving), 1) if moving else None,
            "still_appear_to_classified_ms": round(max(still), 1) if still else None}


def split_layout(setup: Setup) -> bool:
    """Whether the config runs full scans on a thread of their own (Pipeline's "split")."""
    return setup.detection == "split" and setup.region_scans


def daemon_plan(cost: dict[str, float], regions: list[dict], setup: Setup, faces: int, convert,
                fit: tuple[float, float], round_overhead: float, frames_per_round: float | None = None) -> dict:
    """``convert``: instructions (or x86 ms) to ms; for counting instructions instead, pass ``float``
    and the ``frames_per_round`` of a plan in ms."""
    """The daemon's two cores for ``faces`` faces: the frame loop's share and the detection thread's rounds."""
    classified = faces if setup.classify_per_frame == 0 else min(faces, setup.classify_per_frame)
    views = 1 if setup.views_across_frames else setup.views
    view = cost["view views=2"] if views == 1 else cost[f"classify views={setup.views}"]
    main = {"gray": cost["gray"], "track": cost[f"track_current faces={faces} moving=1"],
            "crop": classified * cost["crop"], "classify": classified * view, "smooth": classified * cost["smooth"],
            "pipeline": cost["main_overhead"]}
    per_round = cost[f"track_update faces={faces} rounds=1"] + cost["submit"]
    region = cost["motion"] + round_overhead + sum(fit[0] + fit[1] * r["px"] for r in regions)
    full = cost[f"scan_full min_face={setup.min_face} upsample={setup.upsample} width={setup.width}"]
    ms = {k: convert(v) for k, v in main.items()}
    base = sum(ms.values())
    region_ms, full_ms, per_round_ms = convert(region), convert(full), convert(per_round)
    # The round rate depends on the frame rate, and the loop's per-round work on the round rate: iterate.
    frame_ms = base
    for _ in range(3 if frames_per_round is None else 0):
        sim = simulate(max(frame_ms, 1e3 / setup.camera_fps), region_ms, full_ms, setup)
        frame_ms = base + per_round_ms / max(1.0, sim["frames_per_round"])
    if frames_per_round is not None:
        sim = {"frames_per_round": frames_per_round}
        frame_ms = base + per_round_ms / max(1.0, frames_per_round)
    period = max(frame_ms, 1e3 / setup.camera_fps)
    ms["track"] += per_round_ms / max(1.0, sim["frames_per_round"])       # round arrivals, submits
    # the worst frame applies a round and starts the next; with full scans apart, one of each
    arrivals = 2 if split_layout(setup) else 1
    return {"per_frame": frame_ms, "worst_frame": base + arrivals * per_round_ms, "fps": 1e3 / period,
            "per_stage": ms, "detection": {"round_ms": region_ms, "full_scan_ms": full_ms,
                                           "regions": len(regions), "scanned_px": sum(r["px"] for r in regions),
                                           **sim}}


DAEMON_ASSUMPTION = ("daemon (today's): the frame loop on one core - gray, the tracks' boxes, "
                     "classify_per_frame face(s) cropped and classified in one view, a round's result taken and "
                     "the next submitted; detection rounds on a second core (dlib releases the GIL): a full scan "
                     "every full_scan_s, else regions around each track and where the picture changed; a round "
                     "starts at most every every_n_frames frames, when the thread is free. With performance."
                     "detection = 'split', full scans run on a third core of their own (started every "
                     "full_scan_s, when that thread is free) and the second does region rounds only. fps = "
                     "min(frame loop, camera). Faces move {shift} face widths between rounds' frames, so each has "
                     "a changed region (merged when close, as Scanner.plan does). The worst frame is the loop's: "
                     "detection is not on it (split: a frame that applies one round of each kind). Memory and "
                     "GIL contention between the cores are not modelled.")


def with_daemon_overhead(cost: dict[str, float], setup: Setup) -> dict[str, float]:
    """Pipeline.process's own work on the frame loop beyond its stages: the measured frame_main
    (3 faces, classify_per_frame of them in one view) minus those stages, never below 0."""
    classified = setup.classify_per_frame or 3
    key = f"frame_main faces=3 per_frame={classified} views=2"
    parts = cost["gray"] + cost["track_current faces=3 moving=1"] + classified * (
        cost["crop"] + cost["view views=2"] + cost["smooth"])
    return cost | {"main_overhead": max(0.0, cost[key] - parts)}


def round_check(cost: dict[str, float], notes: dict[str, str], setup: Setup, fit) -> dict:
    """The counted whole round (scan_round, 3 faces) against motion + the fitted region costs: what is
    left is the round's own work (a second shrink, overlap suppression, bookkeeping) and the fit's error."""
    key = f"scan_round faces=3 min_face={setup.min_face}"
    pixels = [float(part.rsplit("= ", 1)[1].split()[0]) for part in notes[key].split("; ") if "px scanned" in part]
    modelled = cost["motion"] + sum(fit[0] + fit[1] * px for px in pixels)
    return {"measured": cost[key], "modelled": modelled, "overhead": cost[key] - modelled, "regions": len(pixels)}


def peak_rss_mb(config: Path | None, frames: int = 300) -> float:
    """The daemon's peak resident set on this machine, in MB (10^6 bytes): ``moodcam run --source demo``
    in a child of a small Python that reads its children's ru_maxrss (so no other child counts)."""
    with tempfile.TemporaryDirectory() as state:
        # python -m edge from the checkout (not the venv's console script): this tree's daemon
        cmd = [sys.executable, "-m", "edge", "run", "--source", "demo", "--max-frames", str(frames), "--state", state]
        if config:
            cmd += ["--config", str(config)]
        probe = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)"
                 ".returncode; print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if rc == 0 else -rc)")
        proc = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        kb = int(proc.stdout.strip() or "0")
        if kb <= 0:
            raise BenchError(f"moodcam run for the peak RSS failed (exit {-kb}): {proc.stderr.strip()[-200:]}")
        return round(kb * 1024 / 1e6, 1)


# ------------------------------------------------------------------------------ the report
def cpi_band(counted: dict, calibrate: bool, override: tuple[float, float] | None) -> dict:
    if override:
        return {"low": override[0], "high": override[1], "source": "--cpi"}
    mnv2 = counted.get("mobilenet_v2") if calibrate else None
    if not mnv2:
        return {"low": STATED_CPI[0], "high": STATED_CPI[1], "source": "DESIGN.md (calibration not counted)"}
    c = CALIBRATION
    cycles = [c["published_ms"] / 1e3 * c["published_hz"] * s for s in c["speedup"]]
    low, high = (round(v / mnv2["instructions"], 3) for v in cycles)
    return {"low": min(low, STATED_CPI[0]), "high": max(high, STATED_CPI[1]), "calibrated": [low, high],
            "stated": list(STATED_CPI),
            "source": f"{c['source']}: {c['published_ms']:g} ms x {c['speedup'][0]}-{c['speedup'][1]} "
                      f"(4-thread speed-up) at {c['published_hz'] / 1e9:g} GHz over "
                      f"{mnv2['instructions'] / 1e6:.1f} M instructions counted here = {low}-{high}; "
                      f"band = that and DESIGN.md's {STATED_CPI[0]}-{STATED_CPI[1]} together"}


def ms_of(instructions: float, cpi: float) -> float:
    return instructions * cpi / PI3_HZ * 1e3


def frame_figures(plan: dict, counted: dict, x86: dict) -> dict:
    """The per-frame figures of one schedule: ``plan`` by CPI band (low/mid/high, in Pi-3 ms),
    ``counted`` the same plan in instructions, ``x86`` in x86 ms. Fps bands run high to low CPI."""
    return {
        "pi3_ms_per_frame": round(plan["mid"]["per_frame"], 1),
        "pi3_ms_per_frame_band": [round(plan["low"]["per_frame"], 1), round(plan["high"]["per_frame"], 1)],
        "pi3_fps": round(plan["mid"]["fps"], 2),
        "pi3_fps_band": [round(plan["high"]["fps"], 2), round(plan["low"]["fps"], 2)],
        "pi3_worst_frame_ms": round(plan["mid"]["worst_frame"], 1),
        "pi3_worst_frame_ms_band": [round(plan["low"]["worst_frame"], 1), round(plan["high"]["worst_frame"], 1)],
        "instructions_per_frame": round(counted["per_frame"]),
        "x86_ms_per_frame": round(x86["per_frame"], 3), "x86_worst_frame_ms": round(x86["worst_frame"], 3),
        "per_stage": {n: {"instructions": round(counted["per_stage"][n]), "ms": round(plan["mid"]["per_stage"][n], 2),
                          "ms_band": [round(plan["low"]["per_stage"][n], 2), round(plan["high"]["per_stage"][n], 2)],
                          "x86_ms": round(x86["per_stage"][n], 3)} for n in counted["per_stage"]}}


def summarise(counted: dict, x86_ms: dict, setup: Setup, config, schedule: str, cpi: dict,
              widths=TRACK_FACES) -> dict:
    """Both schedules for 1-3 faces; the daemon's also for each face width (its headline: the worst)."""
    notes = {k: v.get("note", "") for k, v in counted.items()}
    insns = {k: v["instructions"] for k, v in counted.items()}
    mid = (cpi["low"] + cpi["high"]) / 2
    converts = {"low": lambda v: ms_of(v, cpi["low"]), "mid": lambda v: ms_of(v, mid),
                "high": lambda v: ms_of(v, cpi["high"])}
    fits = {"pi3": region_fit(insns, notes), "x86": region_fit(x86_ms, notes)}
    checks = {"pi3": round_check(insns, notes, setup, fits["pi3"]), "x86": round_check(x86_ms, notes, setup, fits["x86"])}
    cost = {"pi3": with_daemon_overhead(insns, setup), "x86": with_daemon_overhead(x86_ms, setup)}
    regions = {(k, w): round_regions(config, k, w) for k in (1, 2, 3) for w in widths}
    out = {}
    for k in (1, 2, 3):
        entry = {}
        # serial
        ser = {band: serial_plan(insns, setup, k, conv) for band, conv in converts.items()}
        ser_x86 = serial_plan(x86_ms, setup, k, float)
        ser_i = serial_plan(insns, setup, k, float)
        entry["serial"] = frame_figures(ser, ser_i, ser_x86)
        # daemon, for each face width
        by_width = {}
        for w in widths:
            r = regions[(k, w)]
            d = {band: daemon_plan(cost["pi3"], r, setup, k, conv, fits["pi3"], checks["pi3"]["overhead"])
                 for band, conv in converts.items()}
            dx = daemon_plan(cost["x86"], r, setup, k, float, fits["x86"], checks["x86"]["overhead"])
            di = daemon_plan(cost["pi3"], r, setup, k, float, fits["pi3"], checks["pi3"]["overhead"],
                             d["mid"]["detection"]["frames_per_round"])
            det = {band: d[band]["detection"] for band in d}
            by_width[str(w)] = frame_figures(d, di, dx) | {
                "detection": {
                    "round_ms": round(det["mid"]["round_ms"], 1),
                    "round_ms_band": [round(det["low"]["round_ms"], 1), round(det["high"]["round_ms"], 1)],
                    "round_instructions": round(di["detection"]["round_ms"]),
                    "full_scan_ms": round(det["mid"]["full_scan_ms"], 1),
                    "full_scan_ms_band": [round(det["low"]["full_scan_ms"], 1), round(det["high"]["full_scan_ms"], 1)],
                    "rounds_per_s": det["mid"]["rounds_per_s"],
                    "rounds_per_s_band": [det["high"]["rounds_per_s"], det["low"]["rounds_per_s"]],
                    "busy": det["mid"]["busy"], "busy_band": [det["low"]["busy"], det["high"]["busy"]],
                    "cores": det["mid"]["cores"],
                    "busy_region_core_band": [det["low"]["busy_region_core"], det["high"]["busy_region_core"]],
                    "busy_full_core_band": [det["low"]["busy_full_core"], det["high"]["busy_full_core"]],
                    "region_rounds_per_s": det["mid"]["region_rounds_per_s"],
                    "full_scans_per_s": det["mid"]["full_scans_per_s"],
                    "still_appear_to_classified_ms_band": [det["low"]["still_appear_to_classified_ms"],
                                                           det["high"]["still_appear_to_classified_ms"]],
                    "frames_per_round": det["mid"]["frames_per_round"],
                    "full_rounds_share": det["mid"]["full_rounds_share"],
                    "appear_to_classified_ms": det["mid"]["appear_to_classified_ms"],
                    "appear_to_classified_ms_band": [det["low"]["appear_to_classified_ms"],
                                                     det["high"]["appear_to_classified_ms"]],
                    "still_appear_to_classified_ms": det["mid"]["still_appear_to_classified_ms"],
                    "regions": r, "scanned_px": det["mid"]["scanned_px"],
                    "x86_round_ms": round(dx["detection"]["round_ms"], 2),
                    "x86_full_scan_ms": round(dx["detection"]["full_scan_ms"], 2)}}
        worst = max(by_width, key=lambda w: by_width[w]["detection"]["round_ms"])
        entry["daemon"] = by_width[worst] | {"face_px": int(worst), "by_width": by_width}
        out[str(k)] = entry
    return {"by_faces": out, "region_fit": {"pi3": list(fits["pi3"]), "x86": list(fits["x86"])},
            "round_check": checks}


HEADLINE = ("pi3_ms_per_frame", "pi3_ms_per_frame_band", "pi3_fps", "pi3_fps_band", "pi3_worst_frame_ms",
            "pi3_worst_frame_ms_band", "per_stage", "x86_ms_per_frame", "x86_worst_frame_ms")


def fmt_band(band, digits=1) -> str:
    if None in band:
        return "-"
    return f"{band[0]:.{digits}f}-{band[1]:.{digits}f}"


def print_report(result: dict, counted: dict, x86_ms: dict, info: dict) -> None:
    s, cpi = result["setup"], result["cpi"]
    print(f"Pi-3 cost model ({result['date']}): aarch64 instructions under qemu-aarch64 -cpu cortex-a53, "
          f"x {cpi['low']}-{cpi['high']} cycles/instruction at 1.2 GHz")
    print(f"  CPI: {cpi['source']}")
    print(f"  x86 ms: {result['cpu']}, one thread, median thread CPU time per call "
          f"(this machine's cores are shared with other jobs)\n")
    print(f"{'item (one call)':52} {'instructions':>14} {'Pi-3 ms':>15} {'x86 ms':>9}")
    for key, v in counted.items():
        lo, hi = ms_of(v["instructions"], cpi["low"]), ms_of(v["instructions"], cpi["high"])
        print(f"{key:52} {v['instructions'] / 1e6:12.2f} M {lo:7.2f}-{hi:<7.2f} {x86_ms.get(key, float('nan')):9.3f}"
              f"   {v.get('note', '')}")
    fit, check = result["region_fit"]["pi3"], result["round_check"]["pi3"]
    print(f"\nregion scan model: {fit[0] / 1e6:.2f} M + {fit[1]:.0f} instructions a scanned pixel (least squares "
          f"over the region scans above)")
    print(f"check: a whole region round, 3 faces ({check['regions']} regions): {check['measured'] / 1e6:.1f} M counted, "
          f"{check['modelled'] / 1e6:.1f} M motion + modelled regions; the difference "
          f"({check['overhead'] / 1e6:+.1f} M: second shrink, overlap suppression, the fit's error) is added to every round")
    print(f"\nconfig: camera {s['camera_fps']:g} fps; detection every {s['every_n']} frames at most "
          f"({s['detection']}); full scans at {s['width']} px, upsample {s['upsample']}, every {s['full_scan_s']:g} s"
          f"{'' if s['region_scans'] else ' (region_scans off: every round is a full scan)'}; min_face_px "
          f"{s['min_face']}; classify_per_frame {s['classify_per_frame']}, "
          f"{'one view a classification' if s['views_across_frames'] else str(s['views']) + ' views a classification'}"
          f" ({s['views']} views in turn)")
    print(f"\nschedule daemon: {DAEMON_ASSUMPTION.format(shift=MOTION_SHIFT)}")
    print(f"schedule serial: {SERIAL_ASSUMPTION}")
    if s["detection"] == "inline":
        print("note: this config runs detection inline; the daemon schedule still models it on its own thread")
    faces = str(result["faces"])
    main = result["by_faces"][faces]["daemon"]
    print(f"\ndaemon, frame loop per frame, {faces} faces of {main['face_px']} px:")
    print(f"{'stage':10} {'instructions':>14} {'Pi-3 ms':>9} {'x86 ms':>9}")
    for name, v in main["per_stage"].items():
        print(f"{name:10} {v['instructions'] / 1e6:12.2f} M {v['ms']:9.2f} {v['x86_ms']:9.3f}")
    print(f"\ndaemon: frame loop (main core; the critical path) and detection rounds (second core), Pi-3 at "
          f"{cpi['low']}-{cpi['high']} CPI")
    print(f"{'faces':>5} {'px':>4} {'loop ms/frame':>14} {'fps':>12} {'worst frame':>12} {'round ms':>14} "
          f"{'rounds/s':>10} {'busy':>10} {'full scan ms':>14} {'appear->class. ms':>18} {'x86 loop/round ms':>18}")
    for k, entry in result["by_faces"].items():
        for w, v in entry["daemon"]["by_width"].items():
            d = v["detection"]
            print(f"{k:>5} {w:>4} {fmt_band(v['pi3_ms_per_frame_band']):>14} {fmt_band(v['pi3_fps_band']):>12} "
                  f"{fmt_band(v['pi3_worst_frame_ms_band']):>12} {fmt_band(d['round_ms_band']):>14} "
                  f"{fmt_band(d['rounds_per_s_band'], 2):>10} {fmt_band(d['busy_band'], 2):>10} "
                  f"{fmt_band(d['full_scan_ms_band']):>14} {fmt_band(d['appear_to_classified_ms_band'], 0):>18} "
                  f"{v['x86_ms_per_frame']:8.2f}/{d['x86_round_ms']:<8.2f}")
    print("  worst frame: the frame loop's worst (a round's result applied and the next submitted); detection is "
          "not on it. A round's results arrive its round ms after its frame.")
    print("  appear->class.: worst case for a moving face: it appears just after a round started, the next "
          "region round finds it, the frame after that round ends classifies it")
    d = main["detection"]
    layout = ("3 cores: frame loop, region rounds, full scans" if d["cores"] == 3
              else "2 cores: frame loop, detection rounds (full scans among them)")
    print(f"  {layout}; detection cores busy: region {fmt_band(d['busy_region_core_band'], 2)}"
          + (f", full {fmt_band(d['busy_full_core_band'], 2)}" if d["cores"] == 3 else "")
          + f"; {d['region_rounds_per_s']} region rounds/s, {d['full_scans_per_s']} full scans/s; a face that sits "
            f"still is classified at worst {fmt_band(d['still_appear_to_classified_ms_band'], 0)} ms after it appears")
    print(f"\nserial (the old design) with the same config, for comparison:")
    print(f"{'faces':>5} {'ms/frame':>14} {'fps':>12} {'worst frame ms':>16} {'x86 ms/frame':>13}")
    for k, entry in result["by_faces"].items():
        v = entry["serial"]
        print(f"{k:>5} {fmt_band(v['pi3_ms_per_frame_band']):>14} {fmt_band(v['pi3_fps_band'], 2):>12} "
              f"{fmt_band(v['pi3_worst_frame_ms_band']):>16} {v['x86_ms_per_frame']:13.3f}")
    for kind, frame in (("detection", True), ("other", False)):
        key = (f"frame detect={frame} min_face={s['min_face']} upsample={s['upsample']} views={s['views']} "
               f"width={s['width']}")
        if kind == "other":
            parts = serial_overhead({k: v["instructions"] for k, v in counted.items()}, Setup(**s))
            summed = sum(d["other_frame"] for n, d in frame_costs(parts, Setup(**s), 3).items() if n != "pipeline")
        else:
            parts = serial_overhead({k: v["instructions"] for k, v in counted.items()}, Setup(**s))
            summed = sum(d["detection_frame"] for d in frame_costs(parts, Setup(**s), 3).values())
        print(f"check: serial Pipeline.process, 3 faces, {kind} frame: {counted[key]['instructions'] / 1e6:.1f} M "
              f"measured, {summed / 1e6:.1f} M the stages' sum" + (" (pipeline overhead from this frame)"
                                                                   if kind == "other" else ""))
    if result.get("peak_rss_mb"):
        print(f"\npeak RSS of the daemon here (x86, moodcam run --source demo --max-frames 300, one process with "
              f"its detection thread): {result['peak_rss_mb']} MB")
    check = info.get("check")
    if check:
        print(f"\ncounted {len(info['counted'])} items in {info.get('count_s')} s; marked loops "
              f"{check['marked'] / 1e6:.1f} M of the runs' difference {check['total_difference'] / 1e6:.1f} M "
              f"instructions (start-up baseline {check['baseline_total'] / 1e6:.0f} M)")
    if info["cached"]:
        print(f"{info['cached']} counts from the cache (.bench/pi3/counts.json; --fresh counts again)")
    if info["stale"]:
        print(f"note: {len(info['stale'])} cached counts were made with other edge/ code ({', '.join(info['stale'])});"
              " --fresh counts again")


def parse_args(argv):
    parser = argparse.ArgumentParser(description="The Pi-3 cost model: the pipeline's stages counted in aarch64 "
                                                 "instructions under qemu, as Pi-3 milliseconds.")
    parser.add_argument("--config", type=Path, help="a moodcam config TOML (default: the built-in defaults)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default.tflite")
    parser.add_argument("--faces", type=int, default=3, choices=(1, 2, 3), help="faces a frame for the headline (default 3)")
    parser.add_argument("--schedule", choices=("daemon", "serial"), default="daemon",
                        help="daemon: today's (detection rounds on their own core; default); serial: the old "
                             "single-threaded design, for comparison")
    parser.add_argument("--camera-fps", type=float, help=f"the camera's rate (default: camera.fps, or "
                                                          f"{DEFAULT_CAMERA_FPS:g} when that is 0)")
    parser.add_argument("--rss", action="store_true", help="also measure the daemon's peak RSS here: moodcam run "
                                                           "--source demo --max-frames 300 (about 25 s)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the arm64 root (deploy/arm64-check.sh)")
    parser.add_argument("--cpi", help="LOW,HIGH cycles per instruction instead of the calibration")
    parser.add_argument("--no-calibrate", action="store_true", help="skip MobileNetV2 (CPI band from DESIGN.md)")
    parser.add_argument("--fresh", action="store_true", help="count again, ignoring the cache")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    return parser.parse_args(argv)


def run(args) -> dict:
    from edge.config import Config, ConfigError, load_config
    from edge.contracts.modelfile import sha256_of
    from edge.machine import cpu_description

    try:
        config = load_config(args.config) if args.config else Config()
    except ConfigError as exc:
        raise BenchError(str(exc)) from None
    if not args.model.is_file() or not args.model.with_suffix(".json").is_file():
        raise BenchError(f"no model at {args.model} (with its .json sidecar beside it)")
    cpi_override = None
    if args.cpi:
        try:
            cpi_override = tuple(float(v) for v in args.cpi.split(","))
            assert len(cpi_override) == 2 and 0 < cpi_override[0] <= cpi_override[1]
        except (ValueError, AssertionError):
            raise BenchError(f"--cpi {args.cpi!r}: expected LOW,HIGH, e.g. 1.05,1.25") from None
    setup = setup_from(config, args.camera_fps)
    calibrate = not args.no_calibrate
    items = items_for(setup, calibrate)
    inputs = prepare_inputs(args.model, calibrate)
    started = time.monotonic()
    counted, info = counts(items, sha256_of(args.model), inputs, args.root.resolve(), args.fresh)
    x86_ms = time_on_host(items, inputs)
    cpi = cpi_band({it.stage: counted[it.key] for it in items if it.stage == "mobilenet_v2"}, calibrate, cpi_override)
    summary = summarise(counted, x86_ms, setup, config, args.schedule, cpi)
    by_faces = summary["by_faces"]
    main = by_faces[str(args.faces)][args.schedule]
    result = {k: main[k] for k in HEADLINE}
    detection = {}
    if args.schedule == "daemon":
        d = main["detection"]
        detection = {k: d[k] for k in ("round_ms", "round_ms_band", "rounds_per_s", "rounds_per_s_band", "busy",
                                       "busy_band", "full_scan_ms", "full_scan_ms_band", "frames_per_round",
                                       "appear_to_classified_ms", "appear_to_classified_ms_band",
                                       "still_appear_to_classified_ms", "still_appear_to_classified_ms_band",
                                       "cores", "busy_region_core_band", "busy_full_core_band",
                                       "region_rounds_per_s", "full_scans_per_s", "x86_round_ms", "x86_full_scan_ms")}
        detection["face_px"] = main["face_px"]
        result |= {"detection_core_busy": d["busy"], "appear_to_classified_ms": d["appear_to_classified_ms"]}
    result |= {"faces": args.faces, "schedule": args.schedule, "detection": detection,
               "assumption": DAEMON_ASSUMPTION.format(shift=MOTION_SHIFT) if args.schedule == "daemon" else SERIAL_ASSUMPTION,
               "worst_frame_note": "the frame loop's worst frame; detection runs beside it and is not on it"
               if args.schedule == "daemon" else "the detection frame: detection runs inline",
               "cpi": cpi, "clock_hz": PI3_HZ, "setup": vars(setup), "cpu": cpu_description(),
               "date": date.today().isoformat(),
               "items": {k: {"instructions": v["instructions"], "x86_ms": round(x86_ms[k], 4), "note": v.get("note", "")}
                         for k, v in counted.items()},
               "by_faces": by_faces, "region_fit": summary["region_fit"], "round_check": summary["round_check"],
               "calibration": CALIBRATION | {"speedup": list(CALIBRATION["speedup"])},
               "run": {k: info[k] for k in ("cached", "check", "stale")} | {"counted": len(info["counted"]),
                                                                         "seconds": round(time.monotonic() - started, 1)}}
    if args.rss:
        result["peak_rss_mb"] = peak_rss_mb(args.config)
    print_report(result, counted, x86_ms, info)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"pi3_cost: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
