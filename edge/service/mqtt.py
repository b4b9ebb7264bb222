"""MQTT: each logged face as an event, the faces now as retained state, Home Assistant discovery.

The frame loop only appends to a bounded queue and sets a flag (:meth:`MqttPublisher.face_logged`,
:meth:`MqttPublisher.frame`); a sender thread turns them into JSON and hands them to paho, whose
own network thread connects (asynchronously: a broker that is down at start delays nothing),
reconnects with backoff and resends QoS-1 messages the broker has not acknowledged. While the
broker cannot be reached the queue keeps at most ``mqtt.buffer`` events; beyond that the oldest
is dropped and counted. Topics and payloads: docs/mqtt.md.
"""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from edge.config import ConfigError, MqttConfig
from edge.store.records import FaceRecord, iso_utc

log = logging.getLogger("moodcam.mqtt")

OUTSTANDING_MAX = 100    # messages handed to paho and not yet acknowledged: paho's own queue stays short
STOP_FLUSH_S = 3.0       # a clean stop waits this long at most for queued events to be acknowledged
LAST_MINUTE_S = 60.0


def host_camera_name() -> str:
    """The machine's host name as one topic level (the default camera name)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])
    return name or "moodcam"


@dataclass(frozen=True)
class Topics:
    events: str
    state: str
    availability: str

    @classmethod
    def of(cls, prefix: str, camera: str) -> Topics:
        base = f"{prefix}/{camera}"
        return cls(f"{base}/events", f"{base}/state", f"{base}/availability")


def event_payload(record: FaceRecord, row_id: int, camera: str) -> dict:
    """One logged face, as published on <prefix>/<camera>/events."""
    return {"id": row_id, "camera": camera, "track": record.track, "label": record.label,
            "confidence": round(float(record.confidence), 4), "ts": record.ts, "time": iso_utc(record.ts),
            "box": [int(v) for v in record.box], "frame": record.frame,
            "probs": {k: round(float(v), 4) for k, v in record.probs.items()}, "model_sha256": record.model_sha256}


def state_payload(faces: list[tuple], recent: list[str], labels: list[str], now: float) -> dict:
    """The retained state: ``faces`` (track, label, confidence, box) now, ``recent`` the labels
    logged over the last minute. ``label`` is the largest face's (the one nearest the camera)."""
    largest = max(faces, key=lambda f: int(f[3][2]) * int(f[3][3]), default=None)
    counts = Counter(recent)
    return {"ts": now, "time": iso_utc(now), "count": len(faces),
            "label": largest[1] if largest else "none",
            "faces": [{"track": int(t), "label": lab, "confidence": round(float(c), 4), "box": [int(v) for v in box]}
                      for t, lab, c, box in faces],
            "last_minute": {label: counts.get(label, 0) for label in labels},
            "logged_last_minute": len(recent)}


def discovery_messages(discovery_prefix: str, camera: str, topics: Topics, labels: list[str],
                       device: dict) -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery: (config topic, payload) for each entity of this camera."""
    node = f"moodcam_{camera}"
    common = {"state_topic": topics.state, "availability_topic": topics.availability,
              "payload_available": "online", "payload_not_available": "offline", "device": device,
              "origin": {"name": "moodcam", "sw_version": device.get("sw_version", "")}}
    entities = [
        ("sensor", "faces", {"name": "Faces", "value_template": "{{ value_json.count }}",
                             "state_class": "measurement", "unit_of_measurement": "faces",
                             "icon": "mdi:face-recognition"}),
        ("sensor", "expression", {"name": "Expression", "value_template": "{{ value_json.label }}",
                                  "icon": "mdi:emoticon-outline", "json_attributes_topic": topics.state}),
        ("binary_sensor", "face", {"name": "Face", "device_class": "occupancy",
                                   "value_template": "{{ 'ON' if value_json.count > 0 else 'OFF' }}"}),
    ] + [("sensor", f"{label}_last_minute", {"name": f"{label.capitalize()} last minute",
                                             "value_template": f"{{{{ value_json.last_minute.{label} }}}}",
                                             "state_class": "measurement", "unit_of_measurement": "faces",
                                             "icon": "mdi:counter"})
         for label in labels]
    return [(f"{discovery_prefix}/{component}/{node}/{key}/config",
             {**common, **fields, "unique_id": f"{node}_{key}"})
            for component, key, fields in entities]


class NoPublisher:
    """MQTT off (mqtt.host empty): every call does nothing."""

    enabled = False

    def start(self) -> None:
        pass

    def face_logged(self, record: FaceRecord, row_id: int) -> None:
        pass

    def frame(self, faces) -> None:
        pass

    def model_changed(self, model_name: str, model_sha256: str) -> None:
        pass

    def stop(self) -> None:
        pass

    def stats(self) -> dict:
        return {}


class MqttPublisher:
    enabled = True

    def __init__(self, cfg: MqttConfig, *, labels: list[str], model_name: str, model_sha256: str, version: str):
        self.cfg = cfg
        self.camera = cfg.camera or host_camera_name()
        self.topics = Topics.of(cfg.topic_prefix, self.camera)
        self.labels = list(labels)
        self.version = version
        self.device = self._device(model_name, model_sha256)
        self._queue: deque = deque(maxlen=cfg.buffer)
        self._queue_lock = threading.Lock()
        self._recent: deque = deque()          # (ts, label) of every logged face of the last minute
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._faces_now: list[tuple] | None = None
        self._next_state = 0.0
        self._last_state: dict | None = None
        self._force_state = False
        self._count_lock = threading.Lock()
        self._published = self._acked = 0      # every QoS-1 message handed to paho / acknowledged
        self.events_sent = self.events_dropped = self.connects = 0
        self._warned_down = False
        self.client = None
        self._thread: threading.Thread | None = None

    def _device(self, model_name: str, model_sha256: str) -> dict:
        """Home Assistant's device card: the camera, moodcam's version and the model it runs."""
        return {"identifiers": [f"moodcam_{self.camera}"], "name": f"moodcam {self.camera}",
                "manufacturer": "moodcam", "model": f"expression camera ({model_name})",
                "sw_version": f"{self.version} (model {model_name} {model_sha256[:12]})"}

    def model_changed(self, model_name: str, model_sha256: str) -> None:
        """After a model switch (SIGHUP): the retained discovery configs name the new model."""
        self.device = self._device(model_name, model_sha256)
        if self._connected.is_set():
            self._send_discovery()

    # ------------------------------------------------------------------- called by the frame loop
    def face_logged(self, record: FaceRecord, row_id: int) -> None:
        """A row was logged: queue its event (O(1); the JSON is made on the sender thread)."""
        with self._queue_lock:
            if len(self._queue) == self._queue.maxlen:
                self.events_dropped += 1       # the deque drops the oldest itself
            self._queue.append((record, row_id))
        self._recent.append((record.ts, record.label))
        self._wake.set()

    def frame(self, faces) -> None:
        """After each frame: every state_interval_s, note the faces now for the state message."""
        now = time.monotonic()
        if now < self._next_state:
            return
        self._next_state = now + self.cfg.state_interval_s
        self._faces_now = [(f.track_id, f.smoothed.label, f.smoothed.confidence, f.box) for f in faces]
        self._wake.set()

    # ------------------------------------------------------------------- start / stop
    def start(self) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ConfigError("mqtt.host is set but paho-mqtt is not installed; install it with "
                              "pip install 'moodcam[mqtt]' or leave mqtt.host empty") from None
        cfg = self.cfg
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"moodcam-{self.camera}")
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            client.tls_set()
        client.reconnect_delay_set(1, cfg.reconnect_max_s)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_connect_fail, client.on_publish = self._on_connect_fail, self._on_publish
        self.client = client
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        client.loop_start()                    # paho's thread: connect, reconnect, network I/O
        self._thread = threading.Thread(target=self._send_loop, name="mqtt", daemon=True)
        self._thread.start()
        log.info("mqtt: publishing to %s:%d as %s (events %s, buffer %d)", cfg.host, cfg.port, self.camera,
                 self.topics.events, cfg.buffer)

    def stop(self) -> None:
        """Send what is queued (at most STOP_FLUSH_S), say offline, disconnect."""
        if self.client is None:
            return
        deadline = time.monotonic() + STOP_FLUSH_S
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_FLUSH_S)
        while self._connected.is_set() and self._outstanding() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._connected.is_set():
            info = self.client.publish(self.topics.availability, "offline", qos=1, retain=True)
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        left = len(self._queue) + self._outstanding()
        log.info("mqtt: stopped; %d events sent, %d dropped (buffer full), %d not sent", self.events_sent,
                 self.events_dropped, left)
        self.client = None

    def stats(self) -> dict:
        return {"connected": self._connected.is_set(), "camera": self.camera, "events_sent": self.events_sent,
                "events_dropped": self.events_dropped, "events_queued": len(self._queue), "buffer": self.cfg.buffer,
                "unacknowledged": self._outstanding(), "connects": self.connects}

    # ------------------------------------------------------------------- paho's thread
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, reason_code)
            return
        self.connects += 1
        self._warned_down = False
        log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
        self._publish(self.topics.availability, "online", retain=True)
        self._send_discovery()
        self._force_state = True
        self._connected.set()
        self._wake.set()

    def _send_discovery(self) -> None:
        if self.cfg.discovery_prefix:
            for topic, payload in discovery_messages(self.cfg.discovery_prefix, self.camera, self.topics,
                                                     self.labels, self.device):
                self._publish(topic, json.dumps(payload), retain=True)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stopping.is_set():
            log.warning("mqtt: lost the broker (%s); reconnecting with backoff, keeping up to %d events",
                        reason_code, self.cfg.buffer)

    def _on_connect_fail(self, _client, _userdata) -> None:
        if not self._warned_down:    # once per outage, not once per retry
            log.warning("mqtt: cannot reach %s:%d; retrying with backoff, keeping up to %d events",
                        self.cfg.host, self.cfg.port, self.cfg.buffer)
            self._warned_down = True

    def _on_publish(self, _client, _userdata, _mid, _reason_code, _properties) -> None:
        with self._count_lock:
            self._acked += 1
        if self._queue:
            self._wake.set()

    # ------------------------------------------------------------------- the sender thread
    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        with self._count_lock:
            self._published += 1
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _outstanding(self) -> int:
        with self._count_lock:
            return self._published - self._acked

    def _send_loop(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                if self._connected.is_set():
                    self._send_events()
                    self._send_state()
            except Exception as exc:  # noqa: BLE001 - MQTT must never stop the camera
                log.warning("mqtt: publishing failed: %s", exc)
            if self._stopping.is_set() and (not self._queue or not self._connected.is_set()):
                return

    def _send_events(self) -> None:
        while self._connected.is_set() and self._outstanding() < OUTSTANDING_MAX:
            with self._queue_lock:
                if not self._queue:
                    return
                record, row_id = self._queue.popleft()
            self._publish(self.topics.events, json.dumps(event_payload(record, row_id, self.camera)))
            self.events_sent += 1

    def _send_state(self) -> None:
        faces = self._faces_now
        if faces is None or (self._stopping.is_set() and not self._force_state):
            return
        now = time.time()
        while self._recent and self._recent[0][0] < now - LAST_MINUTE_S:
            self._recent.popleft()
        state = state_payload(faces, [label for _, label in list(self._recent)], self.labels, now)
        unchanged = {k: v for k, v in state.items() if k not in ("ts", "time")}
        if unchanged == self._last_state and not self._force_state:
            return
        self._last_state, self._force_state = unchanged, False
        self._publish(self.topics.state, json.dumps(state), retain=True)


def make_publisher(cfg: MqttConfig, *, labels: list[str], model_name: str, model_sha256: str,
                   version: str) -> MqttPublisher | NoPublisher:
    if not cfg.host:
        return NoPublisher()
    return MqttPublisher(cfg, labels=labels, model_name=model_name, model_sha256=model_sha256, version=version)
