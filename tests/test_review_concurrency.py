"""Reviewing while the daemon writes: another process logs faces into the same store (SQLite WAL)
while reviews go through the server; afterwards no logged row and no review is missing."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.review_support import REPO, fill_store, review_server

WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from edge.contracts.labels import LABELS
from edge.store.database import Store
from edge.store.records import FaceRecord
from tests.review_support import MODEL_SHA, synthetic_face
n = int(sys.argv[3])
with Store(Path(sys.argv[2]), busy_timeout_s=10) as store:   # the daemon's side
    print("ready", flush=True)
    for i in range(n):
        label = LABELS[i % 7]
        rec = FaceRecord(ts=1_796_000_000 + i, frame=i, track=100 + i, box=(0, 0, 48, 48), label=label,
                         confidence=0.5, probs={l: (0.5 if l == label else 0.5 / 6) for l in LABELS},
                         model_sha256=MODEL_SHA, source="writer")
        store.log_face(rec, synthetic_face(5000 + i))
        time.sleep(0.005)
print("done", flush=True)
"""


def test_reviews_and_daemon_writes_interleave_without_loss(tmp_path):
    state = tmp_path / "state"
    fill_store(state, 5)
    logged = 150
    with review_server("--state", str(state)) as (base, _):
        token = httpx.get(f"{base}/api/info").json()["write_token"]
        headers = {"x-moodcam-token": token}
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(state), str(logged)],
                                  stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert writer.stdout.readline().strip() == "ready"
        reviewed: dict[int, str] = {}
        seen_while_writing = set()
        # Review whatever has appeared so far, page after page, until the writer is done and
        # everything it wrote has been reviewed.
        while True:
            writing = writer.poll() is None
            page = httpx.get(f"{base}/api/faces", params={"reviewed": "false", "order": "time", "limit": 20}, timeout=30).json()
            if not page["items"] and not writing:
                break
            changes = [{"id": it["id"], "action": "label", "label": "happy" if it["id"] % 2 else "sad"} for it in page["items"]]
            if changes:
                r = httpx.post(f"{base}/api/reviews", json={"changes": changes}, headers=headers, timeout=60)
                assert r.status_code == 200, r.text
                reviewed.update({c["id"]: c["label"] for c in changes})
                if writing:
                    seen_while_writing.update(c["id"] for c in changes)
            else:
                time.sleep(0.05)
        assert writer.wait(60) == 0
        stats = httpx.get(f"{base}/api/stats", timeout=30).json()
        assert stats["total"] == 5 + logged and stats["reviewed"] == 5 + logged
    assert len(seen_while_writing) > 0, "no review happened while the writer was writing"

    from edge.store.database import Store
    from edge.store.health import verify

    with Store(state, readonly=True) as store:
        assert store.count() == 5 + logged                       # no logged row lost
        got = {f.id: f.review_label for f in store.faces(reviewed=True)}
        assert got == reviewed                                   # no review lost
        assert store.count(source="writer") == logged
        assert verify(store) == []
