"""A real mosquitto broker on a free port, and a paho subscriber that records what arrives."""
from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.shared_data import unavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else "")
    if not found:
        unavailable("mosquitto is not installed (apt-get install mosquitto)")
    return found


class Broker:
    """mosquitto with its own config: loopback, anonymous, persistent sessions (so a subscriber's
    queued messages and subscriptions survive a restart, as on a real installation)."""

    def __init__(self, folder: Path):
        self.binary = mosquitto_binary()
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        # `user`: run as root, mosquitto would switch to user mosquitto and could not write its
        # persistence file in our private folder (then a restart would forget the sessions).
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"user {getpass.getuser()}\n"
                             f"persistence_location {folder}/\nautosave_interval 1\n"
                             f"max_queued_messages 100000\nlog_dest file {folder}/mosquitto.log\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits, as `systemctl restart` does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None


class Subscriber:
    """A paho client with a persistent session (QoS 1) that keeps every message it receives."""

    def __init__(self, port: int, topics: list[str], client_id: str = "test-subscriber"):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.topics = topics
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(30), "the subscriber did not connect"

    def _on_connect(self, client, _u, _f, reason_code, _p):
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics])
            self.connected.set()

    def _on_message(self, _c, _u, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.messages), timeout)

    def payloads(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def event_ids(self, topic: str) -> set[int]:
        return {json.loads(p)["id"] for p in self.payloads(topic)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
