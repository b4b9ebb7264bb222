"""Prometheus metrics from the daemon itself, on a loopback port (metrics.port; off by default).

Nothing runs in the frame loop: a collector reads the daemon's counters when Prometheus scrapes,
on the HTTP server's own thread, and disk use comes from a read-only store connection of its own
(cached for DISK_CACHE_S), never from the daemon's, whose lock the frame loop takes to log a face.
Metric names and why the daemon serves them rather than the review server: docs/daemon.md#metrics.
"""
from __future__ import annotations

import logging
import threading
import time

from edge.config import MetricsConfig
from edge.vision.pipeline import STAGES

log = logging.getLogger("moodcam.metrics")

DISK_CACHE_S = 30.0      # summing crop sizes is a scan of the faces table: not on every scrape
DISK_PARTS = (("database", "db_bytes"), ("wal", "wal_bytes"), ("crops", "crops_bytes"),
              ("reserve", "reserve_bytes"), ("total", "total_bytes"))


class DaemonCollector:
    """Reads a running :class:`edge.service.daemon.Daemon` at scrape time."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.started_at = time.time()
        self._last = (time.monotonic(), 0)           # (when, frames) at the previous scrape
        self._lock = threading.Lock()                # scrapes run on threads of their own
        self._disk: tuple[float, dict | None] = (0.0, None)
        self._store = None

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        d = self.daemon
        s = d.stats
        frames = s.frames
        stage_total = dict(s.times.total)            # one C-level copy: the loop may add a stage meanwhile
        timed = max(1, s.times.frames)
        with self._lock:
            now = time.monotonic()
            then, frames_then = self._last
            fps = (frames - frames_then) / (now - then) if now - then >= 1.0 else s.fps()
            self._last = (now, frames) if now - then >= 1.0 else self._last
            disk = self._disk_usage()

        def counter(name, doc, value):
            return CounterMetricFamily(f"moodcam_{name}", doc, value=value)

        def gauge(name, doc, value):
            return GaugeMetricFamily(f"moodcam_{name}", doc, value=value)

        yield counter("frames", "frames through the whole pipeline", frames)
        yield counter("faces_seen", "faces summed over all frames", s.faces)
        yield gauge("faces", "faces in the latest frame", getattr(d, "_faces_now", 0))
        yield counter("logged_rows", "rows logged to the store", s.logged)
        yield counter("dropped_rows", "rows not logged because the disk was full", s.dropped)
        yield gauge("fps", "frames per second since the previous scrape (since start on the first)", round(fps, 3))
        yield gauge("start_time_seconds", "when the daemon started, unix seconds", self.started_at)
        ms = GaugeMetricFamily("moodcam_stage_ms", "mean milliseconds a frame per stage, since start",
                               labels=["stage"])
        secs = CounterMetricFamily("moodcam_stage_seconds", "seconds spent per stage", labels=["stage"])
        for stage in (*STAGES, *sorted(set(stage_total) - set(STAGES))):
            ms.add_metric([stage], round(stage_total.get(stage, 0.0) / timed, 3))
            secs.add_metric([stage], stage_total.get(stage, 0.0) / 1e3)
        yield ms
        yield secs
        yield counter("detection_rounds", "detection rounds applied", s.rounds)
        yield counter("detection_full_scans", "detection rounds that scanned the whole frame", s.full_scans)
        yield counter("detection_restarts", "detection threads restarted after a failure", s.restarts)
        if d.classifier is not None:
            meta = d.classifier.meta
            yield InfoMetricFamily("moodcam_model", "the model in use", value={
                "name": meta.name, "sha256": meta.tflite_sha256, "runtime": str(d.classifier.runtime),
                "path": str(d.classifier.path)})
        if disk is not None:
            used = GaugeMetricFamily("moodcam_disk_bytes", "bytes the store uses", labels=["part"])
            for part, key in DISK_PARTS:
                used.add_metric([part], disk[key])
            yield used
            yield gauge("disk_free_bytes", "bytes free on the store's file system", disk["free_bytes"])
            yield gauge("store_rows", "rows in the store", disk["rows"])
        mq = d.mqtt.stats() if d.mqtt.enabled else None
        if mq:
            yield gauge("mqtt_connected", "1 while connected to the MQTT broker", int(mq["connected"]))
            yield counter("mqtt_events_sent", "events handed to the MQTT client", mq["events_sent"])
            yield counter("mqtt_events_dropped", "events dropped from a full buffer", mq["events_dropped"])
            yield gauge("mqtt_events_queued", "events waiting for the broker", mq["events_queued"])

    def _disk_usage(self) -> dict | None:
        when, usage = self._disk
        if usage is not None and time.monotonic() - when < DISK_CACHE_S:
            return usage
        from edge.store.database import Store
        from edge.store.health import disk_usage

        try:
            if self._store is None:
                self._store = Store(self.daemon.state_dir, readonly=True)
            usage = disk_usage(self._store)
        except Exception as exc:  # noqa: BLE001 - a scrape must still answer with the counters
            log.warning("metrics: disk use not read: %s", exc)
            return usage
        self._disk = (time.monotonic(), usage)
        return usage

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class MetricsServer:
    def __init__(self, daemon, cfg: MetricsConfig):
        self.daemon, self.cfg = daemon, cfg
        self.server = self.thread = self.collector = None

    def start(self) -> None:
        """Serve /metrics; a port in use or prometheus-client missing is logged, never fatal
        (metrics must not keep the camera from logging)."""
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            log.error("metrics.port is set but prometheus-client is not installed; pip install "
                      "'moodcam[metrics]' (the daemon runs on without metrics)")
            return
        self.collector = DaemonCollector(self.daemon)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        try:
            self.server, self.thread = start_http_server(self.cfg.port, self.cfg.host, registry=registry)
        except OSError as exc:
            log.error("metrics: cannot listen on %s:%d: %s (the daemon runs on without metrics)",
                      self.cfg.host, self.cfg.port, exc)
            return
        log.info("metrics: http://%s:%d/metrics", self.cfg.host, self.cfg.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)
            self.server = None
        if self.collector is not None:
            self.collector.close()
