"""MQTT against a real mosquitto: every logged face arrives as an event while the broker is up; a
broker that is down at start or restarted mid-run loses at most what overflowed the buffer (and
exactly what the daemon counted as dropped); Home Assistant discovery; availability and the last
will when the daemon is killed with SIGKILL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.config import Config, ConfigError, parse_config
from edge.contracts.labels import LABELS
from edge.service.daemon import EXIT_OK, Daemon
from edge.service.mqtt import Topics, discovery_messages, state_payload
from edge.store.database import Store
from tests.mqtt_support import Broker, Subscriber, free_port

REPO = Path(__file__).resolve().parent.parent
CAMERA = "testcam"
TOPICS = Topics.of("moodcam", CAMERA)


def daemon_config(tmp_path, model, port: int, **mqtt) -> Config:
    return Config().with_overrides(
        camera={"source": "demo"}, store={"state_dir": str(tmp_path / "state")},
        classifier={"model": str(model)}, logging={"min_interval_s": 0.0}, systemd={"notify": False},
        mqtt={"host": "127.0.0.1", "port": port, "camera": CAMERA, "reconnect_max_s": 1, **mqtt})


def store_ids(tmp_path) -> set[int]:
    with Store(tmp_path / "state", readonly=True) as store:
        return {row[0] for row in store.read("SELECT id FROM faces")}


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def test_mqtt_config_is_off_by_default_and_checks_names():
    assert Config().mqtt.host == "" and Config().mqtt.topic_prefix == "moodcam"
    with pytest.raises(ConfigError, match=r"mqtt.camera = 'front door' is invalid: letters, digits"):
        parse_config({"mqtt": {"camera": "front door"}})
    with pytest.raises(ConfigError, match=r"mqtt.topic_prefix = 'a/#' is invalid"):
        parse_config({"mqtt": {"topic_prefix": "a/#"}})
    assert parse_config({"mqtt": {"host": "broker", "topic_prefix": "home/moodcam"}}).mqtt.port == 1883


def test_discovery_and_state_payloads():
    device = {"identifiers": ["moodcam_x"], "name": "moodcam x", "sw_version": "0.1.0"}
    msgs = dict(discovery_messages("homeassistant", "x", Topics.of("moodcam", "x"), list(LABELS), device))
    assert "homeassistant/sensor/moodcam_x/faces/config" in msgs
    assert "homeassistant/binary_sensor/moodcam_x/face/config" in msgs
    assert len(msgs) == 3 + len(LABELS)
    assert len({m["unique_id"] for m in msgs.values()}) == len(msgs)
    assert all(m["state_topic"] == "moodcam/x/state" and m["availability_topic"] == "moodcam/x/availability"
               for m in msgs.values())
    state = state_payload([(3, "happy", 0.9, (0, 0, 10, 10)), (4, "sad", 0.5, (0, 0, 50, 50))],
                          ["happy", "happy", "sad"], list(LABELS), 1.7e9)
    assert (state["count"], state["label"], state["logged_last_minute"]) == (2, "sad", 3)
    assert state["last_minute"] == {**dict.fromkeys(LABELS, 0), "happy": 2, "sad": 1}


def test_every_logged_face_arrives_while_the_broker_is_up(tiny_model, tmp_path, broker):
    sub = Subscriber(broker.port, ["moodcam/#", "homeassistant/#"])
    try:
        daemon = Daemon(daemon_config(tmp_path, tiny_model, broker.port), max_frames=60, handle_signals=False)
        assert daemon.run() == EXIT_OK
        rows = store_ids(tmp_path)
        assert rows, "the demo source should log faces"
        assert sub.wait_for(lambda _: sub.event_ids(TOPICS.events) >= rows, 30)
        received = sub.event_ids(TOPICS.events)
        stats = daemon.summary()["mqtt"]
        print(f"\nbroker up: {len(rows)} rows logged, {stats['events_sent']} events sent, "
              f"{len(received & rows)} received, {len(rows - received)} lost, buffer {stats['buffer']}")
        assert received == rows and stats["events_dropped"] == 0
        event = json.loads(sub.payloads(TOPICS.events)[0])
        assert {"id", "track", "label", "confidence", "ts", "time", "box"} <= set(event)
        assert event["label"] in LABELS and len(event["box"]) == 4
        # Availability: online once connected, offline (published by the daemon itself) on a clean stop.
        assert sub.wait_for(lambda _: sub.payloads(TOPICS.availability)[-1:] == [b"offline"], 10)
        assert b"online" in sub.payloads(TOPICS.availability)
        states = [json.loads(p) for p in sub.payloads(TOPICS.state)]
        assert states and {"count", "label", "faces", "last_minute"} <= set(states[-1])
        assert max(s["logged_last_minute"] for s in states) > 0
        configs = {t: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/")}
        assert f"homeassistant/sensor/moodcam_{CAMERA}/faces/config" in configs
        assert len(configs) == 3 + len(LABELS)
    finally:
        sub.close()
    # Retained: a subscriber that comes later still gets the discovery config, state and availability.
    late = Subscriber(broker.port, ["moodcam/#", "homeassistant/#"], client_id="late")
    try:
        assert late.wait_for(lambda m: len({t for t, _, r in m if r}) == 3 + len(LABELS) + 2, 10)
    finally:
        late.close()


def test_a_model_switch_renames_the_model_in_discovery(broker):
    """After SIGHUP loads another model, Home Assistant's device card names it (retained configs again)."""
    from edge.service.mqtt import MqttPublisher

    cfg = daemon_config(Path("/nonexistent"), "m.tflite", broker.port).mqtt
    publisher = MqttPublisher(cfg, labels=list(LABELS), model_name="default", model_sha256="cd" * 32, version="0")
    sub = Subscriber(broker.port, ["homeassistant/#"])
    topic = f"homeassistant/sensor/moodcam_{CAMERA}/faces/config"
    device = lambda: [json.loads(p)["device"]["sw_version"] for p in sub.payloads(topic)]
    try:
        publisher.start()
        assert sub.wait_for(lambda _: device() == ["0 (model default cdcdcdcdcdcd)"], 30)
        publisher.model_changed("next", "ab" * 32)
        assert sub.wait_for(lambda _: device()[-1:] == ["0 (model next abababababab)"], 30)
    finally:
        publisher.stop()
        sub.close()


def test_an_unreachable_broker_never_stops_the_daemon(tiny_model, tmp_path):
    """Nothing listens on the port: the daemon logs every face, keeps the events, stops cleanly."""
    daemon = Daemon(daemon_config(tmp_path, tiny_model, free_port()), max_frames=30, handle_signals=False)
    assert daemon.run() == EXIT_OK
    stats = daemon.summary()["mqtt"]
    rows = len(store_ids(tmp_path))
    assert rows == daemon.stats.logged > 0 and daemon.stats.frames == 30
    assert (stats["connected"], stats["events_sent"], stats["events_queued"]) == (False, 0, rows)


def test_mqtt_without_paho_is_one_line_and_exit_2(tiny_model, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[mqtt]\nhost = "127.0.0.1"\n')
    hide = "import sys; sys.modules['paho'] = None; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", hide, "run", "--config", str(config), "--source", "demo", "--state",
                          str(tmp_path / "state"), "--model", str(tiny_model), "--max-frames", "3"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "moodcam run: error: mqtt.host is set but paho-mqtt is not installed; install it with pip install "
        "'moodcam[mqtt]' or leave mqtt.host empty")


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
def test_broker_down_at_start_then_restarted_mid_run(tiny_model, tmp_path):
    """The daemon logs on while the broker is away, keeps at most `buffer` events, and loses
    exactly the events it counted as dropped (the oldest of an overflowing buffer)."""
    buffer = 60
    broker = Broker(tmp_path / "broker")
    broker.start()                      # once, so the subscriber's persistent session exists
    sub = Subscriber(broker.port, ["moodcam/#"])
    broker.stop()
    daemon = Daemon(daemon_config(tmp_path, tiny_model, broker.port, buffer=buffer), handle_signals=False)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        # 1. Down at start: fewer events than the buffer holds, then the broker comes: none lost.
        _wait(lambda: daemon.stats.logged >= 5, 240, "the daemon logged nothing")
        broker.start()
        _wait(lambda: daemon.mqtt.stats()["connected"], 60, "the daemon did not connect")
        first = daemon.stats.logged
        _wait(lambda: sub.event_ids(TOPICS.events) >= set(range(1, first + 1)), 60, "buffered events missing")
        assert daemon.mqtt.stats()["events_dropped"] == 0, f"{first} rows before the broker came overflowed"
        print(f"\nbroker down at start: {first} rows logged until connected, all received")
        # 2. Restarted mid-run as `systemctl restart mosquitto` does: fewer events than the buffer, none lost.
        restart_at = daemon.stats.logged
        broker.stop()
        broker.start()
        _wait(lambda: daemon.mqtt.stats()["connects"] >= 2, 60, "the daemon did not reconnect")
        restarted = daemon.stats.logged
        _wait(lambda: sub.event_ids(TOPICS.events) >= set(range(1, restarted + 1)), 60, "events lost in a restart")
        assert daemon.mqtt.stats()["events_dropped"] == 0
        print(f"broker restarted: {restarted - restart_at} rows logged while it was away, all received")
        # 3. Away long enough to overflow the buffer: the oldest are dropped, and counted.
        before = daemon.stats.logged
        broker.stop()
        _wait(lambda: daemon.stats.logged >= before + 2 * buffer, 240, "the daemon stopped logging")
        broker.start()
        _wait(lambda: daemon.mqtt.stats()["connects"] >= 3, 60, "the daemon did not reconnect")
        during = daemon.stats.logged - before
        _wait(lambda: daemon.mqtt.stats()["events_queued"] == 0, 60, "the buffer did not drain")
    finally:
        daemon.stop_event.set()
        thread.join(timeout=120)
    rows = store_ids(tmp_path)
    stats = daemon.summary()["mqtt"]
    dropped = stats["events_dropped"]
    expected = len(rows) - dropped
    sub.wait_for(lambda _: len(sub.event_ids(TOPICS.events) & rows) >= expected, 30)
    received = sub.event_ids(TOPICS.events) & rows
    lost = rows - received
    print(f"broker away for {during} rows: {len(rows)} rows logged in all, buffer {buffer}, "
          f"{stats['events_sent']} events sent, "
          f"{len(received)} received, {len(lost)} lost, {dropped} counted as dropped")
    sub.close()
    broker.stop()
    assert len(lost) == dropped, "lost exactly the events counted as dropped"
    assert dropped <= max(0, during - buffer), "only what overflowed the buffer"
    assert lost <= set(range(before + 1, before + during + 1)), "losses only from the outage"


@pytest.mark.slow
def test_sigkill_makes_the_broker_publish_offline(tiny_model, tmp_path, broker):
    config = tmp_path / "c.toml"
    config.write_text(f'[camera]\nsource = "demo"\n[systemd]\nnotify = false\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ncamera = "{CAMERA}"\n')
    sub = Subscriber(broker.port, ["moodcam/#", "homeassistant/#"])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config), "--state",
                             str(tmp_path / "state"), "--model", str(tiny_model)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert sub.wait_for(lambda _: sub.payloads(TOPICS.availability)[-1:] == [b"online"], 240), \
            "the daemon never said online"
        assert sub.wait_for(lambda _: sub.payloads(TOPICS.state), 60)
        proc.kill()
        proc.wait(timeout=30)
        assert sub.wait_for(lambda _: sub.payloads(TOPICS.availability)[-1:] == [b"offline"], 30), \
            "the broker did not publish the last will"
        configs = [t for t, _, _ in sub.messages if t.startswith(f"homeassistant/sensor/moodcam_{CAMERA}/")]
        assert len(configs) >= 1 + len(LABELS)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
