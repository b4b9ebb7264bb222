"""Prometheus metrics: the daemon's own endpoint, scraped over HTTP while it runs and parsed with
prometheus_client's parser."""
from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from edge.config import Config
from edge.contracts.modelfile import load_sidecar
from edge.service.daemon import Daemon
from edge.store.database import Store
from tests.mqtt_support import free_port
from tests.shared_data import unavailable


def scrape(port: int) -> dict:
    """{sample name: {labels as a sorted tuple: value}} of one scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_endpoint_while_the_daemon_runs(tiny_model, tmp_path):
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        unavailable("prometheus-client is not installed (pip install 'moodcam[metrics]')")
    port = free_port()
    config = Config().with_overrides(
        camera={"source": "demo"}, store={"state_dir": str(tmp_path / "state")}, classifier={"model": str(tiny_model)},
        logging={"min_interval_s": 0.0}, systemd={"notify": False}, metrics={"port": port})
    daemon = Daemon(config, handle_signals=False)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 240
        while daemon.stats.logged < 3:
            assert time.monotonic() < deadline and thread.is_alive(), "the daemon logged nothing"
            time.sleep(0.1)
        m = scrape(port)
    finally:
        daemon.stop_event.set()
        thread.join(timeout=120)
    assert m["moodcam_frames_total"][()] >= 1 and m["moodcam_logged_rows_total"][()] >= 3
    assert m["moodcam_dropped_rows_total"][()] == 0 and m["moodcam_fps"][()] > 0
    assert m["moodcam_faces_seen_total"][()] >= m["moodcam_logged_rows_total"][()]
    assert m["moodcam_stage_ms"][(("stage", "classify"),)] > 0
    assert {dict(k)["stage"] for k in m["moodcam_stage_seconds_total"]} >= {"detect", "track", "crop", "classify", "log"}
    (labels, value), = m["moodcam_model_info"].items()
    meta = load_sidecar(tiny_model)
    assert value == 1 and dict(labels)["sha256"] == meta.tflite_sha256 and dict(labels)["name"] == meta.name
    assert m["moodcam_disk_bytes"][(("part", "total"),)] > 0 and m["moodcam_disk_free_bytes"][()] > 0
    with Store(tmp_path / "state", readonly=True) as store:
        assert 1 <= m["moodcam_store_rows"][()] <= store.count()
    with pytest.raises(OSError):      # stopped with the daemon
        scrape(port)
