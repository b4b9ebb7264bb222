"""The Pi-3 cost model: the pipeline's own stages counted in aarch64 instructions, as Pi-3 milliseconds.

    sudo deploy/arm64-check.sh                  # once: the arm64 root in .arm64/ (15-40 min)
    .venv/bin/python bench/pi3_cost.py [--json] [--faces 3] [--schedule serial|parallel] [--fresh]

1. Each stage (gray frame, dlib HOG at the sizes below, the face crop, one classifier call of the
   model with one view and with flip TTA, the tracker's work, Pipeline.process as a whole) runs in
   the arm64 root of deploy/arm64-check.sh - its Python, LiteRT and dlib-bin aarch64 wheels - under
   ``qemu-aarch64 -cpu cortex-a53`` (the Pi 3's core: NEON, no dot product, so LiteRT/XNNPACK picks
   the kernels a Pi 3 runs) with bench/pi3/insncount.c, a TCG plugin that counts the guest
   instructions. bench/pi3/stages.py marks each stage's loop; a second run with 0 iterations is
   the start-up baseline that is subtracted; the rest divided by the iterations is one call.
2. Instructions become Pi-3 ms at 1.2 GHz and a cycles-per-instruction band calibrated on
   MobileNetV2 int8 (224x224), counted the same way, against XNNPACK's published 30 ms on a
   1.4 GHz Pi 3B+ with 4 threads (XNNPACK README, Feb 2022), at a 3.3-3.9x four-thread speed-up.
3. A schedule turns stage costs into a frame's time (see :func:`serial` and :func:`parallel`).

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


def items_for(setup: "Setup", calibrate: bool) -> list[Item]:
    """The standard set (HOG at 640x480 upsample 0 and 1 and at 320x240) and whatever ``setup`` uses."""
    views = sorted({1, 2, setup.views})
    sizes = sorted({(640, 0), (640, 1), (320, 0), (setup.width, setup.upsample)})
    out = [item("gray", 20)]
    out += [item("detect", 2 if upsample else (3 if width >= 640 else 6), width=width, upsample=upsample)
            for width, upsample in sizes]
    out += [item("crop", 50), item("invoke", 10)]
    out += [item("classify", 10 // v, views=v) for v in views]
    out += [item("track_update", 200, faces=k) for k in (1, 2, 3)]
    out += [item("track_current", 200, faces=k) for k in (1, 2, 3)]
    out += [item("smooth", 200)]
    frame = dict(width=setup.width, upsample=setup.upsample, views=setup.views)
    out += [item("frame", 2, detect=True, **frame), item("frame", 5, detect=False, **frame)]
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


# ------------------------------------------------------------------------------ the schedule
@dataclass(frozen=True)
class Setup:
    every_n: int        # detection on every Nth frame
    width: int          # detect_width
    upsample: int
    views: int          # classifier calls per face per frame (2 = flip TTA)


def setup_from(config) -> Setup:
    c = config.classifier
    views = (2 if c.tta else 1) * (3 if c.tta_zoom > 0 and not c.zoom_across_frames else 1)
    d = config.detector
    return Setup(d.every_n_frames, d.detect_width, d.upsample, views)


def frame_costs(cost: dict[str, float], setup: Setup, faces: int) -> dict[str, dict[str, float]]:
    """Per stage, its cost on a detection frame and on the other frames, for ``faces`` faces.
    ``cost`` maps item keys to a per-call cost (instructions or ms)."""
    det = f"detect upsample={setup.upsample} width={setup.width}"
    per_face = {"crop": cost["crop"], "classify": cost[f"classify views={setup.views}"], "smooth": cost["smooth"]}
    rows = {"gray": (cost["gray"], 0.0), "detect": (cost[det], 0.0),
            "track": (cost[f"track_update faces={faces}"], cost[f"track_current faces={faces}"])}
    rows |= {name: (value * faces, value * faces) for name, value in per_face.items()}
    rows["pipeline"] = (cost["pipeline"], cost["pipeline"])
    return {name: {"detection_frame": d, "other_frame": o} for name, (d, o) in rows.items()}


DETECTION_CORE = ("gray", "detect")     # what a detection worker would take off the frame loop


def serial(stages: dict[str, dict[str, float]], every_n: int) -> dict:
    """Today's daemon: one thread, a frame's time is the sum of its stages; every Nth frame also
    detects, and that frame is the worst."""
    detection = sum(s["detection_frame"] for s in stages.values())
    other = sum(s["other_frame"] for s in stages.values())
    return {"per_frame": (detection + (every_n - 1) * other) / every_n, "worst_frame": detection,
            "detection_frame": detection, "other_frame": other,
            "assumption": "serial: one thread; a frame's time is the sum of its stages; every Nth frame "
                          "also runs gray + HOG and is the worst frame"}


def parallel(stages: dict[str, dict[str, float]], every_n: int) -> dict:
    """Detection (gray + HOG) on a worker core, the rest on the frame loop's core: a frame takes the
    busiest core's share per frame - the loop's own work, or the detector's 1/N of a detection when
    that is larger (then the loop waits on it) - and no frame waits for a whole detection."""
    loop_det = sum(s["detection_frame"] for n, s in stages.items() if n not in DETECTION_CORE)
    loop_other = sum(s["other_frame"] for n, s in stages.items() if n not in DETECTION_CORE)
    detector = sum(stages[n]["detection_frame"] for n in DETECTION_CORE)
    loop = (loop_det + (every_n - 1) * loop_other) / every_n
    return {"per_frame": max(loop, detector / every_n), "worst_frame": max(loop_det, detector / every_n),
            "detection_frame": loop_det, "other_frame": loop_other, "detector_core": detector / every_n,
            "detection_latency": detector,
            "assumption": "parallel: gray + HOG on a second core, the rest on the frame loop's; a frame takes "
                          "the busiest core's share (the loop's work, or 1/N of a detection if larger); "
                          "boxes arrive one detection late; memory contention between cores not modelled"}


SCHEDULES = {"serial": serial, "parallel": parallel}


def with_pipeline_overhead(cost: dict[str, float], setup: Setup) -> dict[str, float]:
    """Pipeline.process's own work beyond the stages (timers, dataclasses, list building): the
    measured 3-face non-detection frame minus its stages, never below 0."""
    frame = f"frame detect=False upsample={setup.upsample} views={setup.views} width={setup.width}"
    parts = frame_costs(cost | {"pipeline": 0.0}, setup, 3)
    return cost | {"pipeline": max(0.0, cost[frame] - sum(s["other_frame"] for s in parts.values()))}


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


def summarise(counted: dict, x86_ms: dict, setup: Setup, faces: int, schedule: str, cpi: dict) -> dict:
    instructions = with_pipeline_overhead({k: v["instructions"] for k, v in counted.items()}, setup)
    x86 = with_pipeline_overhead(x86_ms, setup)
    plan = SCHEDULES[schedule]
    stage_insns = frame_costs(instructions, setup, faces)
    stage_x86 = frame_costs(x86, setup, faces)
    mid = (cpi["low"] + cpi["high"]) / 2
    at = {name: plan({s: {k: ms_of(v, c) for k, v in d.items()} for s, d in stage_insns.items()}, setup.every_n)
          for name, c in (("low", cpi["low"]), ("mid", mid), ("high", cpi["high"]))}
    x86_frame = plan(stage_x86, setup.every_n)
    per_stage = {}
    for name, d in stage_insns.items():
        mean = (d["detection_frame"] + (setup.every_n - 1) * d["other_frame"]) / setup.every_n
        xd = stage_x86[name]
        per_stage[name] = {"instructions": round(mean), "ms": round(ms_of(mean, mid), 2),
                           "ms_band": [round(ms_of(mean, cpi["low"]), 2), round(ms_of(mean, cpi["high"]), 2)],
                           "detection_frame_instructions": round(d["detection_frame"]),
                           "other_frame_instructions": round(d["other_frame"]),
                           "x86_ms": round((xd["detection_frame"] + (setup.every_n - 1) * xd["other_frame"])
                                           / setup.every_n, 3)}
    return {"faces": faces, "per_stage": per_stage,
            "pi3_ms_per_frame": round(at["mid"]["per_frame"], 1),
            "pi3_ms_per_frame_band": [round(at["low"]["per_frame"], 1), round(at["high"]["per_frame"], 1)],
            "pi3_fps": round(1e3 / at["mid"]["per_frame"], 2),
            "pi3_fps_band": [round(1e3 / at["high"]["per_frame"], 2), round(1e3 / at["low"]["per_frame"], 2)],
            "pi3_worst_frame_ms": round(at["mid"]["worst_frame"], 1),
            "pi3_worst_frame_ms_band": [round(at["low"]["worst_frame"], 1), round(at["high"]["worst_frame"], 1)],
            "pi3_detection_frame_ms": round(at["mid"]["detection_frame"], 1),
            "pi3_other_frame_ms": round(at["mid"]["other_frame"], 1),
            "instructions_per_frame": round(at["mid"]["per_frame"] / 1e3 * PI3_HZ / mid),
            "x86_ms_per_frame": round(x86_frame["per_frame"], 3), "x86_worst_frame_ms": round(x86_frame["worst_frame"], 3),
            "assumption": at["mid"]["assumption"]}


def print_report(result: dict, counted: dict, x86_ms: dict, info: dict) -> None:
    s, cpi = result["setup"], result["cpi"]
    print(f"Pi-3 cost model ({result['date']}): aarch64 instructions under qemu-aarch64 -cpu cortex-a53, "
          f"x {cpi['low']}-{cpi['high']} cycles/instruction at 1.2 GHz")
    print(f"  CPI: {cpi['source']}")
    print(f"  x86 ms: {result['cpu']}, one thread, median per call\n")
    print(f"{'item (one call)':44} {'instructions':>14} {'Pi-3 ms':>15} {'x86 ms':>9}")
    for key, v in counted.items():
        lo, hi = ms_of(v["instructions"], cpi["low"]), ms_of(v["instructions"], cpi["high"])
        print(f"{key:44} {v['instructions'] / 1e6:12.2f} M {lo:7.2f}-{hi:<7.2f} {x86_ms.get(key, float('nan')):9.3f}"
              f"   {v.get('note', '')}")
    print(f"\nschedule: {result['assumption']}")
    print(f"config: detection every {s['every_n']} frames at {s['width']} px, upsample {s['upsample']}, "
          f"{s['views']} classifier view(s) a face")
    main = result["by_faces"][str(result["faces"])]
    print(f"\nper frame, {result['faces']} faces (mean over the {s['every_n']}-frame cycle):")
    print(f"{'stage':10} {'instructions':>14} {'Pi-3 ms':>9} {'x86 ms':>9}")
    for name, v in main["per_stage"].items():
        print(f"{name:10} {v['instructions'] / 1e6:12.2f} M {v['ms']:9.2f} {v['x86_ms']:9.3f}")
    print(f"\n{'faces':>5} {'Pi-3 ms/frame':>18} {'fps':>13} {'worst frame ms':>18} {'x86 ms/frame':>13}")
    for k, v in result["by_faces"].items():
        band = v["pi3_ms_per_frame_band"]
        fps = v["pi3_fps_band"]
        worst = v["pi3_worst_frame_ms_band"]
        print(f"{k:>5} {band[0]:8.1f}-{band[1]:<8.1f} {fps[0]:6.2f}-{fps[1]:<6.2f} {worst[0]:8.1f}-{worst[1]:<8.1f} "
              f"{v['x86_ms_per_frame']:13.3f}")
    for kind, frame in (("detection", True), ("other", False)):
        measured = counted[f"frame detect={frame} upsample={s['upsample']} views={s['views']} width={s['width']}"]
        three = result["by_faces"]["3"]["per_stage"]
        summed = sum(v[f"{kind}_frame_instructions"] for name, v in three.items() if name != "pipeline")
        print(f"check: Pipeline.process, 3 faces, {kind} frame: {measured['instructions'] / 1e6:.1f} M measured, "
              f"{summed / 1e6:.1f} M the stages' sum")
    check = info.get("check")
    if check:
        print(f"\ncounted {len(info['counted'])} items in {info.get('count_s')} s; marked loops "
              f"{check['marked'] / 1e6:.1f} M of the runs' difference {check['total_difference'] / 1e6:.1f} M "
              f"instructions (start-up baseline {check['baseline_total'] / 1e6:.0f} M)")
    else:
        print(f"\nall {info['cached']} counts from the cache (.bench/pi3/counts.json; --fresh counts again)")
    if info["stale"]:
        print(f"note: {len(info['stale'])} cached counts were made with other edge/ code; --fresh counts again")


def parse_args(argv):
    parser = argparse.ArgumentParser(description="The Pi-3 cost model: the pipeline's stages counted in aarch64 "
                                                 "instructions under qemu, as Pi-3 milliseconds.")
    parser.add_argument("--config", type=Path, help="a moodcam config TOML (default: the built-in defaults)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default.tflite")
    parser.add_argument("--faces", type=int, default=3, choices=(1, 2, 3), help="faces a frame for the headline (default 3)")
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="serial",
                        help="serial: today's single-threaded daemon; parallel: detection on another core")
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
    setup = setup_from(config)
    calibrate = not args.no_calibrate
    items = items_for(setup, calibrate)
    inputs = prepare_inputs(args.model, calibrate)
    started = time.monotonic()
    counted, info = counts(items, sha256_of(args.model), inputs, args.root.resolve(), args.fresh)
    x86_ms = time_on_host(items, inputs)
    cpi = cpi_band({it.stage: counted[it.key] for it in items if it.stage == "mobilenet_v2"}, calibrate, cpi_override)
    by_faces = {str(k): summarise(counted, x86_ms, setup, k, args.schedule, cpi) for k in (1, 2, 3)}
    main = by_faces[str(args.faces)]
    result = {k: main[k] for k in ("pi3_ms_per_frame", "pi3_ms_per_frame_band", "pi3_fps", "pi3_fps_band",
                                   "pi3_worst_frame_ms", "pi3_worst_frame_ms_band", "per_stage",
                                   "x86_ms_per_frame", "x86_worst_frame_ms", "assumption")}
    result |= {"faces": args.faces, "schedule": args.schedule, "cpi": cpi, "clock_hz": PI3_HZ,
               "setup": vars(setup), "cpu": cpu_description(), "date": date.today().isoformat(),
               "items": {k: {"instructions": v["instructions"], "x86_ms": round(x86_ms[k], 4)} for k, v in counted.items()},
               "by_faces": by_faces, "calibration": CALIBRATION | {"speedup": list(CALIBRATION["speedup"])},
               "run": {k: info[k] for k in ("cached", "check", "stale")} | {"counted": len(info["counted"]),
                                                                         "seconds": round(time.monotonic() - started, 1)}}
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
