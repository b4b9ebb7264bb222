"""The daemon's configuration: one TOML file, typed, with a default for every key.

Frigate style: the file maps onto frozen dataclasses; an unknown key or a bad value fails with the
dotted key path, the value, what is allowed and (for typos) the closest known key, so a mistake
on the Pi is found by ``moodcam check-config`` and not at 3 a.m. by systemd.

Each field's ``metadata["doc"]`` is the one-line description that deploy/config.example.toml
repeats; ``min``/``max``/``choices`` are checked by :func:`parse_config`.
"""
from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from edge.capture.sources import SourceSpecError, parse_source
from edge.store.retention import RetentionPolicy

DEFAULT_PATH = Path("/etc/moodcam/config.toml")
_MQTT_NAME = r"[A-Za-z0-9_-]+"                       # one topic level, also a Home Assistant object id
_MQTT_PREFIX = r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*"  # one or more such levels


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the key and the value."""


def _f(default, doc: str, **checks):
    return field(default=default, metadata={"doc": doc, **checks})


@dataclass(frozen=True)
class CameraConfig:
    source: str = _f("auto", "auto | picamera2 | v4l2:N | file:PATH | dir:PATH | demo | any OpenCV URL. "
                             "auto = the Pi camera if there is one, else /dev/video0, else demo (under systemd: "
                             "an error instead, so a missing camera is never faked)")
    width: int = _f(640, "frame width in pixels (sources are resized to it)", min=64, max=4096)
    height: int = _f(480, "frame height in pixels", min=48, max=4096)
    fps: float = _f(0.0, "pace the loop to at most this many frames per second (0 = as fast as frames "
                         "come; the demo source then runs at 15)", min=0.0, max=240.0)
    read_timeout_s: float = _f(2.0, "a capture that takes longer than this counts as a failed read",
                               min=0.05, max=60.0)
    retries: int = _f(3, "consecutive failed reads before the source is closed and reopened", min=1, max=100)
    reopen_attempts: int = _f(5, "reopen attempts (with backoff) before the daemon exits non-zero so "
                                 "systemd restarts it", min=1, max=100)
    backoff_s: float = _f(0.5, "wait before the first reopen; doubles on each further attempt", min=0.0, max=60.0)
    backoff_max_s: float = _f(15.0, "longest wait between reopen attempts", min=0.0, max=600.0)


@dataclass(frozen=True)
class DetectorConfig:
    detect_width: int = _f(640, "frames are downscaled to this width before a full-frame scan by dlib's HOG "
                                "detector (0 = full width); smaller is faster but misses small faces", min=0, max=4096)
    upsample: int = _f(1, "dlib upsampling passes of a full-frame scan: each finds faces half as large at ~4x "
                          "the cost (0: faces from ~80 px, 1: from ~40 px at 640 px wide)", min=0, max=3)
    min_face_px: int = _f(32, "ignore faces narrower than this, in frame pixels; regions where the picture "
                              "changed are zoomed so a face this wide reaches dlib's 80-px window", min=1, max=4096)
    score_threshold: float = _f(0.0, "dlib detection score threshold (higher = fewer, surer faces)",
                                min=-2.0, max=5.0)
    every_n_frames: int = _f(2, "start a detection round (a region round with performance.detection = "
                                "\"split\") at most every Nth frame, when its thread is free; faces are tracked in "
                                "between",
                             min=1, max=300)


@dataclass(frozen=True)
class TrackerConfig:
    iou_threshold: float = _f(0.3, "a detection continues a track when their boxes overlap at least this "
                                   "much (intersection over union)", min=0.01, max=1.0)
    max_missed: int = _f(2, "detection rounds that looked where a track is and did not see it before the "
                            "track ends", min=0, max=100)
    ema_alpha: float = _f(0.3, "weight of the newest frame in each track's smoothed class probabilities "
                               "(1 = no smoothing)", min=0.01, max=1.0)


@dataclass(frozen=True)
class ClassifierConfig:
    model: str = _f("", "path of the .tflite model (its .json sidecar beside it); empty = the model installed "
                        "with `moodcam model install` (state_dir/models/current), else the shipped default "
                        "(models/default.tflite or $MOODCAM_MODEL)")
    num_threads: int = _f(1, "interpreter threads (1 leaves the other cores to the detector and the OS)",
                          min=1, max=16)
    batch: str = _f("auto", "how the faces of one frame go through the model: 'resize' (one batched call), "
                            "'loop' (one call per face into a preallocated tensor) or 'auto'",
                    choices=("auto", "resize", "loop"))
    tta: bool = _f(True, "also classify each face mirrored and average the two: +1.8 points on FER2013 "
                         "PublicTest with the shipped model, for twice the classifier time (about 0.33 ms a face "
                         "on a Xeon, an estimated 36-43 ms on a Pi 3)")
    tta_zoom: float = _f(0.0, "also classify each face zoomed in and out by this fraction (0.15: at 0.85x "
                              "and 1.15x) and average: +0.3 points on single PublicTest faces, at most +0.25 on "
                              "tracks, whose moving average already mixes views (bench/zoom_across_frames.py; "
                              "0 = off; moodcam classify has its own --tta-zoom, default 0.15)", min=0.0, max=0.3)
    min_confidence: float = _f(0.0, "faces whose (calibrated) confidence is below this are logged and printed as "
                                    "'uncertain' instead of a label (their probabilities are kept); 0 = off, "
                                    "every face gets its most likely label. Off by default: on held-out "
                                    "scraped faces a threshold trades labels for accuracy (0.5: 58 % of the "
                                    "faces labelled, 72.9 % of them right, against 59.6 % of all; "
                                    "docs/benchmarks.md), which is the user's choice", min=0.0, max=1.0)
    zoom_across_frames: bool = _f(True, "spread the tta_zoom views over consecutive frames (one zoom a frame, in "
                                        "turn) and let each track's moving average (tracker.ema_alpha) mix them, "
                                        "so zoom costs no classifier time; false = every zoom on every frame, "
                                        "3x the classifier time")


@dataclass(frozen=True)
class PerformanceConfig:
    detection: str = _f("split", "where face detection runs: 'split' (two threads beside the frame loop, on two "
                                 "more of a Pi 3's cores: full scans on one, region rounds back to back on the "
                                 "other, so a 1-s full scan never delays the round that finds a face just come "
                                 "in: on the scene bench paced at Pi-3 speed, 85.5 % recall of faces >= 32 px "
                                 "against 80.8 % for 'thread' with the same full_scan_s), 'thread' (one thread "
                                 "beside the loop for both kinds: dlib releases Python's lock while it scans, so "
                                 "frames never wait for it; for a 2-core machine) or 'inline' (in the frame loop, "
                                 "every detector.every_n_frames frames)",
                        choices=("split", "thread", "inline"))
    region_scans: bool = _f(True, "between full-frame scans, scan only around live tracks and where the picture "
                                  "changed, zoomed in for small faces; false = every round scans the whole frame")
    full_scan_s: float = _f(4.0, "with region_scans: scan the whole frame at least this often (seconds), to find "
                                 "faces that sit still (4: a still face is classified at worst about 5 s after it "
                                 "appears on a Pi 3; every full scan at upsample 1 also brings false boxes, and 2 s "
                                 "recalled 80.1 % of faces >= 32 px with 'split' against 85.5 % at 4 s)",
                            min=0.1, max=600.0)
    classify_per_frame: int = _f(1, "classify at most this many faces a frame (new tracks first, then the least "
                                    "recently classified); the others keep their smoothed label. 0 = every face "
                                    "every frame", min=0, max=64)
    views_across_frames: bool = _f(True, "classify each face in one view at a time (as framed, mirrored, and with "
                                         "classifier.tta_zoom the zooms), in turn, and let the track's moving "
                                         "average mix them; false = every view at every classification")


@dataclass(frozen=True)
class LoggingConfig:
    min_interval_s: float = _f(10.0, "log a track when it appears, when its smoothed label changes, and "
                                     "otherwise at most every this many seconds (0 = every frame)", min=0.0)
    level: str = _f("info", "log level of the daemon's own messages",
                    choices=("debug", "info", "warning", "error"))
    scene_width: int = _f(0, "also keep a small JPEG of the whole frame, this many pixels wide, with each "
                             "logged face, so the review page can show the face in its scene (0 = off: about "
                             "4 KB a row at 160 px on the Pi's SD card; its cost is in docs/review.md)",
                          min=0, max=640)


@dataclass(frozen=True)
class StoreConfig:
    state_dir: str = _f("", "where the SQLite log and the face crops live; empty = /var/lib/moodcam when "
                            "it is writable, else $XDG_STATE_HOME/moodcam (~/.local/state/moodcam)")
    retry_full_s: float = _f(30.0, "after a full disk, wait this long before trying to log again "
                                   "(faces are counted as dropped meanwhile)", min=0.0, max=3600.0)


@dataclass(frozen=True)
class RetentionConfig:
    max_age_days: float = _f(30.0, "delete unreviewed faces older than this (0 = no age limit)", min=0.0)
    reviewed_max_age_days: float = _f(365.0, "delete reviewed faces older than this (0 = no age limit)", min=0.0)
    max_total_mb: float = _f(2048.0, "keep the crops and database under this size, oldest first "
                                     "(0 = no size limit)", min=0.0)
    min_free_mb: float = _f(500.0, "delete oldest faces while the disk has less free space than this", min=0.0)
    check_interval_s: float = _f(300.0, "how often retention runs", min=1.0)


@dataclass(frozen=True)
class SystemdConfig:
    notify: bool = _f(True, "send READY/WATCHDOG/STATUS/STOPPING to systemd when NOTIFY_SOCKET is set")
    status_interval_s: float = _f(5.0, "how often STATUS= (fps, faces) is refreshed", min=0.5)
    heartbeat_interval_s: float = _f(60.0, "how often the daemon writes its heartbeat into the store", min=1.0)


@dataclass(frozen=True)
class MqttConfig:
    host: str = _f("", "MQTT broker host name or address; empty = MQTT off (docs/mqtt.md)")
    port: int = _f(1883, "broker port (8883 is the usual one with tls)", min=1, max=65535)
    topic_prefix: str = _f("moodcam", "topics are PREFIX/CAMERA/events, PREFIX/CAMERA/state and PREFIX/CAMERA/availability")
    discovery_prefix: str = _f("homeassistant", "Home Assistant's MQTT discovery prefix; the sensors' config "
                                                "messages go under it (empty = no discovery messages)")
    camera: str = _f("", "this camera's name in topics and in Home Assistant (letters, digits, - and _); "
                         "empty = the machine's host name, so several Pis never share topics")
    buffer: int = _f(1000, "events kept while the broker cannot be reached; when full the oldest is dropped "
                           "and counted (1000 events are about 0.9 MB of memory, half an hour of a busy room)",
                     min=1, max=1_000_000)
    username: str = _f("", "user name for the broker (empty = anonymous)")
    password: str = _f("", "password for the broker (then let no other user read the config file)")
    tls: bool = _f(False, "connect with TLS, checking the broker's certificate against the system's CAs")
    keepalive_s: int = _f(30, "MQTT keepalive: a broker that hears nothing for 1.5x this long publishes "
                              "the camera as offline", min=5, max=3600)
    reconnect_max_s: int = _f(60, "reconnect backoff: 1 s after a lost connection, doubling up to this",
                              min=1, max=3600)
    state_interval_s: float = _f(1.0, "publish the retained state (faces now, counts of the last minute) at "
                                      "most this often, and only when it changed", min=0.1, max=3600.0)


@dataclass(frozen=True)
class MetricsConfig:
    port: int = _f(0, "serve Prometheus metrics on http://HOST:PORT/metrics from the daemon itself; "
                      "0 = off (docs/daemon.md#metrics)", min=0, max=65535)
    host: str = _f("127.0.0.1", "address the metrics endpoint listens on: loopback by default, since it has "
                                "no token; 0.0.0.0 lets another machine's Prometheus scrape it")


@dataclass(frozen=True)
class LiveConfig:
    fps: float = _f(2.0, "frames a second of the review page's live view, while someone watches it (the daemon "
                         "then draws boxes, tracks and labels on a copy of the frame and JPEG-encodes it beside "
                         "the frame loop, about 10 ms of one Pi-3 core a frame); nobody watching costs nothing. "
                         "0 = no live view", min=0.0, max=15.0)
    quality: int = _f(70, "JPEG quality of the live view's frames", min=10, max=95)


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = field(default_factory=CameraConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    systemd: SystemdConfig = field(default_factory=SystemdConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    live: LiveConfig = field(default_factory=LiveConfig)

    def with_overrides(self, **sections: dict) -> "Config":
        """A copy with some keys replaced, e.g. ``with_overrides(camera={"source": "demo"})``."""
        return replace(self, **{name: replace(getattr(self, name), **values) for name, values in sections.items()})


def _suggest(bad: str, known: list[str]) -> str:
    close = difflib.get_close_matches(bad, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _check_value(path: str, value: Any, tp, meta: dict, where: str) -> Any:
    shown = repr(value) if not isinstance(value, bool) else str(value).lower()
    bad = f"{where}: {path} = {shown} is invalid: "
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(bad + "expected true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(bad + "expected an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(bad + "expected a number")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(bad + "expected a string (in quotes)")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(bad + f"must be >= {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(bad + f"must be <= {meta['max']}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(bad + f"must be one of {', '.join(map(repr, meta['choices']))}"
                          + _suggest(str(value), list(meta["choices"])).replace(" (known", " (choices"))
    return value


def _build(cls, data: Any, prefix: str, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix} must be a table ([{prefix}]), got {data!r}")
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    values = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in known:
            full = [f"{prefix}.{k}" if prefix else k for k in known]
            raise ConfigError(f"{where}: unknown key '{path}'" + _suggest(path, full))
        f = next(f for f in fields(cls) if f.name == key)
        tp = hints[key]
        if is_dataclass(tp):
            values[key] = _build(tp, value, path, where)
        else:
            values[key] = _check_value(path, value, tp, f.metadata, where)
    return cls(**values)


def parse_config(data: dict, where: str = "config") -> Config:
    """A :class:`Config` from parsed TOML; raises ConfigError naming ``where``, the key and the value."""
    config = _build(Config, data, "", where)
    # Cross-field and syntax checks that need more than one value.
    try:
        parse_source(config.camera.source)
    except SourceSpecError as exc:
        raise ConfigError(f"{where}: camera.source = {config.camera.source!r} is invalid: {exc}") from None
    for key, pattern, what in (("camera", _MQTT_NAME, "letters, digits, - and _ only"),
                               ("topic_prefix", _MQTT_PREFIX, "topic levels without +, #, spaces or empty levels"),
                               ("discovery_prefix", _MQTT_PREFIX, "topic levels without +, #, spaces or empty levels")):
        value = getattr(config.mqtt, key)
        if value and not re.fullmatch(pattern, value):
            raise ConfigError(f"{where}: mqtt.{key} = {value!r} is invalid: {what}")
    if config.mqtt.host and not config.mqtt.topic_prefix:
        raise ConfigError(f"{where}: mqtt.topic_prefix is empty: give the topics a prefix such as 'moodcam'")
    try:
        retention_policy(config)
    except ValueError as exc:    # the store's own rules, e.g. reviewed kept at least as long
        raise ConfigError(f"{where}: {exc}") from None
    return config


def retention_policy(config: Config) -> RetentionPolicy:
    """The store's RetentionPolicy from the [retention] section (check_interval_s is the daemon's)."""
    r = config.retention
    return RetentionPolicy(max_age_days=r.max_age_days, reviewed_max_age_days=r.reviewed_max_age_days,
                        max_total_mb=r.max_total_mb, min_free_mb=r.min_free_mb)


def load_config(path: str | Path | None) -> Config:
    """Read ``path`` (None: /etc/moodcam/config.toml if it exists, else all defaults)."""
    if path is None:
        if not DEFAULT_PATH.is_file():
            return Config()
        path = DEFAULT_PATH
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; copy deploy/config.example.toml there "
                          "or leave out --config to use the defaults") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def documented_keys() -> list[tuple[str, Any, str]]:
    """(dotted key, default, doc) for every key: what config.example.toml must document."""
    out = []
    for section in fields(Config):
        cls = get_type_hints(Config)[section.name]
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()
            out.append((f"{section.name}.{f.name}", default, f.metadata.get("doc", "")))
    return out
