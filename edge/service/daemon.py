"""The edge daemon: camera -> detect -> track -> classify -> log, under systemd.

Frigate style: :meth:`Daemon.start` is a readable list of ``start_*`` calls, :meth:`Daemon.stop`
undoes them in reverse, and the frame loop waits on one stop event that SIGTERM/SIGINT set, so a
signal finishes the current frame and closes the store cleanly. SIGHUP reloads the model between
two frames (edge.store.models says which one); if the new one cannot be loaded, the old one stays.

Exit status (systemd's ``Restart=on-failure`` restarts on anything but 0):
0 stopped or the file/folder ended, 2 bad config, 3 bad model, 4 camera gone, 5 store unusable,
6 face detection kept failing.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge import __version__
from edge.capture.camera import Camera
from edge.capture.sources import CameraError, DemoSource, DirSource, Source, SourceUnusable, make_source, parse_source
from edge.cliutil import EXIT_CAMERA, EXIT_DETECTOR, EXIT_MODEL, EXIT_OK, EXIT_STORE, EXIT_USAGE
from edge.config import Config, ConfigError, retention_policy
from edge.contracts.crop import crop_face
from edge.contracts.modelfile import ModelFileError
from edge.service.live import LiveView
from edge.service.logpolicy import LogPolicy
from edge.service.mqtt import NoPublisher, make_publisher
from edge.service.notify import Notifier
from edge.service.pidfile import PidFile
from edge.store import retention
from edge.store.database import Store
from edge.store.layout import default_state_dir
from edge.store.models import resolve_model
from edge.store.records import FaceRecord, StoreError, StoreFullError, scene_thumbnail
from edge.vision.detect import Detector
from edge.vision.pipeline import (
    DetectionFailed,
    FrameResult,
    Pipeline,
    StageTimes,
    StillPipeline,
    classifier_from_config,
)
from edge.vision.track import Tracker

log = logging.getLogger("moodcam.daemon")

DEMO_FPS = 15.0          # the demo source is paced so an idle demo daemon does not burn a core
LOG_CROP_SIZE = 96       # logged crops: the model's framing, at a size a person can review


@dataclass
class Stats:
    frames: int = 0
    faces: int = 0
    logged: int = 0
    dropped: int = 0              # rows not written because the disk was full
    started: float = field(default_factory=time.monotonic)
    times: StageTimes = field(default_factory=StageTimes)
    rounds: int = 0               # detection rounds applied
    full_scans: int = 0           # of which scanned the whole frame
    round_cpu_ms: float = 0.0     # CPU time of those rounds, on the thread that scanned
    restarts: int = 0             # detection threads restarted after a failure

    def fps(self) -> float:
        return self.frames / max(1e-9, time.monotonic() - self.started)

    def summary(self) -> dict:
        return {"frames": self.frames, "faces": self.faces, "logged": self.logged, "dropped": self.dropped,
                "ms_per_stage": self.times.mean(), "fps": round(self.fps(), 2),
                "detection": {"rounds": self.rounds, "full_scans": self.full_scans, "restarts": self.restarts,
                              "cpu_ms_per_round": round(self.round_cpu_ms / max(1, self.rounds), 3)}}


class Daemon:
    def __init__(self, config: Config, *, source: Source | None = None, max_frames: int | None = None,
                 handle_signals: bool = True):
        self.config = config
        self.stop_event = threading.Event()
        self.stats = Stats()
        self.max_frames = max_frames
        self.handle_signals = handle_signals
        self._source_override = source
        self.exit_reason = ""
        self._faces_now = 0
        self.notifier = None
        self.camera = self.store = self.classifier = self.pipeline = None
        self._retention = None
        self.live = None
        self._old_signals: dict = {}
        self.mqtt = NoPublisher()
        self.metrics = None
        self._reload = threading.Event()
        self._pidfile: PidFile | None = None
        self.model_origin = ""

    # ----------------------------------------------------------------------- start / stop
    def start(self) -> None:
        self.start_notifier()
        self.start_classifier()
        self.start_detector()
        self.start_store()
        self.start_retention()
        self.start_mqtt()
        self.start_metrics()
        self.start_live()
        self.start_camera()
        self.start_signals()
        self.notifier.ready(f"camera {self.camera.name}, model {self.classifier.meta.name}")
        log.info("ready: camera %s, model %s (%s, %s, sha256 %s...), state %s", self.camera.name, self.classifier.path,
                 self.model_origin, self.classifier.runtime, self.classifier.meta.tflite_sha256[:12], self.state_dir)

    def stop(self) -> None:
        self.stop_event.set()
        if self.notifier is not None:
            self.notifier.stopping()
        self.stop_signals()
        self.stop_camera()
        self.stop_live()
        self.stop_metrics()
        self.stop_mqtt()
        self.stop_retention()
        self.stop_store()
        self.stop_detector()
        self.stop_classifier()

    def start_notifier(self) -> None:
        self.notifier = Notifier(self.config.systemd.notify, self.config.systemd.status_interval_s)

    def start_classifier(self) -> None:
        model = resolve_model(self.config.classifier.model, self._state_dir())
        self.classifier = classifier_from_config(self.config, model.path)
        self.model_origin = model.origin

    def _state_dir(self) -> Path:
        return Path(self.config.store.state_dir or default_state_dir())

    def reload_model(self) -> bool:
        """SIGHUP: load the model that is now current and switch to it between two frames; the
        store, the tracks and the camera stay. A model that fails to load leaves the old one."""
        self._reload.clear()
        try:
            model = resolve_model(self.config.classifier.model, self._state_dir())
            classifier = classifier_from_config(self.config, model.path)
        except (ModelFileError, OSError) as exc:
            log.error("SIGHUP: the model was not reloaded, still using %s: %s", self.classifier.path, exc)
            return False
        old = self.classifier
        self.classifier = self.pipeline.classifier = classifier
        self.model_origin = model.origin
        self._log_crop = replace(classifier.meta.crop, size=max(LOG_CROP_SIZE, classifier.meta.crop.size))
        log.info("SIGHUP: model %s (%s, sha256 %s...) replaces %s (sha256 %s...)", classifier.path, model.origin,
                 classifier.meta.tflite_sha256[:12], old.path, old.meta.tflite_sha256[:12])
        self.mqtt.model_changed(classifier.meta.name, classifier.meta.tflite_sha256)
        self._heartbeat(force=True)       # `moodcam status` and `model install` see the switch at once
        return True

    def start_detector(self) -> None:
        cfg = self.config
        if self._stills():
            # Unrelated pictures: a box from one must never be cropped out of the next.
            self.pipeline = StillPipeline(self.classifier, cfg.detector)
        else:
            self.pipeline = Pipeline(Detector(cfg.detector), Tracker(cfg.tracker), self.classifier,
                                     cfg.detector.every_n_frames, performance=cfg.performance)
        self.policy = LogPolicy(self.config.logging.min_interval_s)
        crop = self.classifier.meta.crop
        self._log_crop = replace(crop, size=max(LOG_CROP_SIZE, crop.size))

    def start_store(self) -> None:
        self.state_dir = self._state_dir()
        self.store = Store(self.state_dir)
        self._store_retry_at = 0.0
        self._next_heartbeat = 0.0

    def start_retention(self) -> None:
        """A thread that applies the retention limits now and every check_interval_s.

        Its own thread, so deleting a backlog of crops on a slow SD card never stalls frames (or
        trips the watchdog); the store is thread-safe. After a full disk the loop wakes it early.
        """
        self._retention_wake = threading.Event()
        r = self.config.retention
        policy = retention_policy(self.config)

        def loop():
            while not self.stop_event.is_set():
                try:
                    log.debug("retention: %s", retention.enforce(self.store, policy))
                except Exception as exc:   # retention must never stop the camera
                    log.warning("retention failed: %s", exc)
                self._retention_wake.wait(r.check_interval_s)
                self._retention_wake.clear()

        self._retention = threading.Thread(target=loop, name="retention", daemon=True)
        self._retention.start()

    def start_mqtt(self) -> None:
        """Events and state to an MQTT broker (docs/mqtt.md); off while mqtt.host is empty."""
        meta = self.classifier.meta
        self.mqtt = make_publisher(self.config.mqtt, labels=list(meta.labels), model_name=meta.name,
                                   model_sha256=meta.tflite_sha256, version=__version__)
        self.mqtt.start()

    def start_metrics(self) -> None:
        """Prometheus metrics on a loopback port (docs/daemon.md#metrics); off while metrics.port is 0."""
        if self.config.metrics.port:
            from edge.service.metrics import MetricsServer

            self.metrics = MetricsServer(self, self.config.metrics)
            self.metrics.start()

    def start_live(self) -> None:
        """The review page's live view (edge.service.live): idle until a viewer asks for frames."""
        cfg = self.config.live
        if cfg.fps > 0:
            self.live = LiveView(self.state_dir, cfg.fps, cfg.quality)

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.close()
            self.live = None

    def start_camera(self) -> None:
        cfg = self.config.camera
        source = self._source_override or make_source(cfg.source, cfg.width, cfg.height)
        self.camera = Camera(source, cfg, self.stop_event)
        self.camera.open()
        fps = cfg.fps or (DEMO_FPS if isinstance(source, DemoSource) else 0.0)
        self._frame_interval = 1.0 / fps if fps else 0.0

    def start_signals(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_signals[sig] = signal.signal(sig, self._on_signal)
        self._old_signals[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        # Only now that SIGHUP is handled may `moodcam model install` find us (its default kills).
        self._pidfile = PidFile(self.state_dir)
        if not self._pidfile.acquire():
            log.warning("another daemon runs on %s: `moodcam model install` signals that one", self.state_dir)

    def _on_signal(self, signum, _frame) -> None:
        log.info("%s: finishing the current frame, then stopping", signal.Signals(signum).name)
        self.exit_reason = signal.Signals(signum).name
        self.stop_event.set()

    def stop_signals(self) -> None:
        if self._pidfile is not None:
            self._pidfile.release()
            self._pidfile = None
        for sig, old in self._old_signals.items():
            signal.signal(sig, old)
        self._old_signals = {}

    def stop_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None

    def stop_mqtt(self) -> None:
        self.mqtt.stop()

    def stop_camera(self) -> None:
        if self.camera is not None:
            self.camera.close()

    def stop_retention(self) -> None:
        if self._retention is not None:
            self._retention_wake.set()       # the stop event is already set: the loop ends
            self._retention.join(timeout=30)
            self._retention = None

    def stop_store(self) -> None:
        if self.store is not None:
            try:
                self._heartbeat(force=True)
            finally:
                self.store.close()
            self.store = None

    def _stills(self) -> bool:
        """Whether the source delivers unrelated still pictures (dir:) rather than video."""
        if self._source_override is not None:
            return isinstance(self._source_override, DirSource)
        return parse_source(self.config.camera.source).kind == "dir"

    def stop_detector(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = None

    def stop_classifier(self) -> None:
        self.classifier = None

    # ----------------------------------------------------------------------- the loop
    def run(self) -> int:
        """Start, process frames until stopped / the source ends / max_frames, stop. Exit status."""
        status = EXIT_OK
        try:
            self.start()
            self.loop()
        except ModelFileError as exc:
            log.error("%s", exc)
            self.exit_reason, status = f"model: {exc}", EXIT_MODEL
        except ConfigError as exc:      # a configured feature that cannot run here (mqtt without paho)
            log.error("%s", exc)
            self.exit_reason, status = f"config: {exc}", EXIT_USAGE
        except SourceUnusable as exc:
            log.error("camera.source %s cannot work: %s", self.config.camera.source, exc)
            self.exit_reason, status = f"source: {exc}", EXIT_USAGE
        except CameraError as exc:
            log.error("%s; exiting so systemd restarts the service", exc)
            self.exit_reason, status = f"camera: {exc}", EXIT_CAMERA
        except DetectionFailed as exc:
            log.error("%s; exiting so systemd restarts the service", exc)
            self.exit_reason, status = f"detector: {exc}", EXIT_DETECTOR
        except (StoreError, sqlite3.Error, OSError) as exc:
            log.error("the store is unusable: %s", exc)
            self.exit_reason, status = f"store: {exc}", EXIT_STORE
        finally:
            self.stop()
        return status

    def loop(self) -> None:
        next_due = self.stats.started = time.monotonic()
        while not self.stop_event.is_set():
            frame = self.camera.read()
            if frame is None:
                if not self.stop_event.is_set():
                    self.exit_reason = "end of source"
                break
            result = self.pipeline.process(frame)
            t0 = time.perf_counter()
            self.log_faces(result)
            result.ms["log"] = (time.perf_counter() - t0) * 1e3
            if self.live is not None and frame.ts >= self.live.due:   # nobody watching: once a second
                self.live.offer(frame.ts, frame.image, result.faces)
            self.policy.forget(result.ended)
            self._faces_now = len(result.faces)
            self.mqtt.frame(result.faces)
            self.stats.frames += 1
            self.stats.faces += len(result.faces)
            self.stats.times.add(result.ms)
            self._count_detection(result)
            self.notifier.frame_processed(self._status_text() if self.notifier.status_due() else None)
            self._housekeeping()
            if self.max_frames is not None and self.stats.frames >= self.max_frames:
                self.exit_reason = f"max frames ({self.max_frames})"
                break
            if self._frame_interval:
                next_due = max(next_due + self._frame_interval, time.monotonic() - self._frame_interval)
                self.stop_event.wait(max(0.0, next_due - time.monotonic()))

    def _count_detection(self, result: FrameResult) -> None:
        for scan in result.scans:
            self.stats.rounds += 1
            self.stats.full_scans += scan.full
            self.stats.round_cpu_ms += scan.cpu_ms
        self.stats.restarts = getattr(self.pipeline, "restarts", 0)

    def _status_text(self) -> str:
        s = self.stats
        return f"{s.fps():.1f} fps, {self._faces_now} faces now, {s.faces} seen, {s.logged} logged" + (
            f", {s.dropped} dropped (disk full)" if s.dropped else "")

    def log_faces(self, result: FrameResult) -> None:
        frame = result.frame
        for face in result.faces:
            label = face.smoothed.shown_label(self.config.classifier.min_confidence)
            if not self.policy.should_log(face.track_id, label, frame.ts):
                continue
            if time.monotonic() < self._store_retry_at:
                self.stats.dropped += 1
                continue
            record = FaceRecord(
                ts=frame.ts, frame=frame.index, track=face.track_id, box=tuple(face.box), label=label,
                confidence=face.smoothed.confidence, probs=dict(zip(self.classifier.meta.labels, face.smoothed.probs)),
                model_sha256=self.classifier.meta.tflite_sha256, source=self.camera.name)
            width = self.config.logging.scene_width       # 0: no scene kept
            scene = scene_thumbnail(frame.image, width, face.box) if width else None
            try:
                row_id = self.store.log_face(record, crop_face(frame.image, face.box, self._log_crop), scene)
            except StoreFullError as exc:
                self.stats.dropped += 1
                self._store_retry_at = time.monotonic() + self.config.store.retry_full_s
                self._retention_wake.set()        # free space now if the policy allows
                log.warning("disk full, not logging for %.0f s (faces are counted): %s",
                            self.config.store.retry_full_s, exc)
                continue
            self.stats.logged += 1
            self.policy.logged(face.track_id, label, frame.ts)
            self.mqtt.face_logged(record, row_id)

    def _housekeeping(self) -> None:
        if self._reload.is_set():
            self.reload_model()
        self._heartbeat()

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        first = self._next_heartbeat == 0.0      # at the first frame: nothing to say yet
        self._next_heartbeat = now + self.config.systemd.heartbeat_interval_s
        if not force and not first:
            self._journal_line()
        try:
            self.store.write_heartbeat({**self.stats.summary(), "source": self.camera.name if self.camera else "",
                                        "dropped_full_disk": self.stats.dropped,
                                        "model_sha256": self.classifier.meta.tflite_sha256 if self.classifier else "",
                                        "model_name": self.classifier.meta.name if self.classifier else "",
                                        "model_origin": self.model_origin,
                                        "reason": self.exit_reason})
        except Exception as exc:
            log.warning("heartbeat not written: %s", exc)

    def _journal_line(self) -> None:
        """The line a minute (each heartbeat) in the journal: fps, faces, rows, free disk."""
        try:
            vfs = os.statvfs(self.state_dir)        # free space only: cheap, unlike summing crop sizes
            free = f", {vfs.f_bavail * vfs.f_frsize / 2**20:.0f} MB free"
        except OSError:
            free = ""
        mqtt = self.mqtt.stats()
        link = (f", mqtt {'connected' if mqtt['connected'] else 'away'} ({mqtt['events_dropped']} dropped)"
                if mqtt else "")
        log.info("%s%s%s", self._status_text(), free, link)

    def summary(self) -> dict:
        out = {**self.stats.summary(), "source": self.camera.name if self.camera else "",
               "state_dir": str(getattr(self, "state_dir", "")), "stopped": self.exit_reason}
        if self.mqtt.enabled:
            out["mqtt"] = self.mqtt.stats()
        return out


def summary_line(daemon: Daemon) -> str:
    return json.dumps(daemon.summary())
