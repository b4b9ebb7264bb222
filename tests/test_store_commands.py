"""`moodcam export` and `moodcam status` on a real store."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from edge.cli import main
from edge.contracts.labels import LABELS
from edge.store.database import Store
from edge.store.export import FIELDS
from tests.store_helpers import T0, make_crop, make_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "state"
    with Store(path) as s:
        for i in range(5):
            s.log_face(make_record(i, ts=T0 + 60 * i), make_crop(i))
        s.set_review(2, label="fear")
        s.set_review(4, label=None, not_face=True)
        s.write_heartbeat({"fps": 9.7, "frames": 500, "faces": 120, "logged": 5, "dropped": 0,
                           "started_at": time.time() - 7200})
    return path


def test_export_jsonl_fields_and_since(state, capsys):
    assert main(["export", "--state", str(state), "--format", "jsonl"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5] and "exported 5 face(s)" in err
    first = rows[0]
    assert set(first) == {"id", "ts", "ts_unix", "frame", "track", "box", "label", "confidence", "probs",
                          "model_sha256", "source", "crop_file", "review_label", "not_face", "reviewed_at",
                          "final_label"}
    assert first["ts"] == "2025-11-24T16:00:00.000000Z" and first["ts_unix"] == T0
    assert first["box"] == [10, 20, 64, 64] and set(first["probs"]) == set(LABELS)
    assert first["label"] == max(first["probs"], key=first["probs"].get)
    assert first["reviewed_at"] is None and first["final_label"] == first["label"]
    with Image.open(state / first["crop_file"]) as img:
        assert img.size == (48, 48)
    assert (rows[1]["review_label"], rows[1]["final_label"], rows[1]["reviewed_at"].endswith("Z")) == ("fear", "fear", True)
    assert (rows[3]["not_face"], rows[3]["final_label"], rows[4]["not_face"]) == (True, None, False)

    assert main(["export", "--state", str(state), "--since", "2025-11-24T16:02:00Z"]) == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr()[0].splitlines()] == [3, 4, 5]
    assert main(["export", "--state", str(state), "--since", str(T0 + 60), "--until", str(T0 + 180),
                 "--reviewed"]) == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr()[0].splitlines()] == [2]


def test_export_csv_to_a_private_file(state, tmp_path, capsys):
    out = tmp_path / "log.csv"
    assert main(["export", "--state", str(state), "--format", "csv", "--out", str(out)]) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == FIELDS and len(rows) == 5
    assert rows[0]["ts"] == "2025-11-24T16:00:00.000000Z" and rows[0]["box_w"] == "64"
    assert abs(sum(float(rows[0][f"p_{n}"]) for n in LABELS) - 1.0) < 1e-6
    assert (rows[4]["not_face"], rows[3]["not_face"], rows[3]["review_label"], rows[3]["final_label"]) == ("0", "1", "", "")
    assert (rows[1]["review_label"], rows[1]["final_label"], rows[0]["reviewed_at"]) == ("fear", "fear", "")


def test_export_and_status_errors_name_the_problem(tmp_path, capsys):
    assert main(["export", "--state", str(tmp_path / "nope")]) == 2
    assert "no moodcam store at" in capsys.readouterr().err
    Store(tmp_path / "s").close()
    assert main(["export", "--state", str(tmp_path / "s"), "--since", "last tuesday"]) == 2
    assert "'last tuesday' is neither unix seconds nor an ISO-8601 time" in capsys.readouterr().err
    assert main(["status", "--state", str(tmp_path / "nope")]) == 2
    assert "no moodcam store at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--state", str(tmp_path / "s"), "--fromat", "csv"])
    assert "did you mean '--format'" in capsys.readouterr().err


def test_status_text_and_json(state, capsys):
    assert main(["status", "--state", str(state)]) == 0
    text = capsys.readouterr().out
    assert "5 logged, 2 reviewed (1 not a face)" in text
    assert "heartbeat" in text and "up 2.0 h, 9.7 fps, 500 frames, 120 faces, 5 logged" in text
    assert "free of" in text and "last 2025-11-24T16:04:00.000000Z" in text

    assert main(["status", "--state", str(state), "--json", "--check"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["rows"], s["reviewed"], s["not_face"], s["problems"]) == (5, 2, 1, [])
    assert s["heartbeat"]["fps"] == 9.7 and s["heartbeat"]["age_s"] >= 0 and s["heartbeat"]["stale"] is False
    assert s["disk"]["crops_bytes"] > 0 and s["disk"]["free_bytes"] > 0
    assert s["last_logged"] == "2025-11-24T16:04:00.000000Z"


def test_status_names_the_model(state, capsys):
    """From the heartbeat when the daemon wrote one, else the newest row's sha."""
    assert main(["status", "--state", str(state), "--json"]) == 0
    running = json.loads(capsys.readouterr().out)["model"]["running"]
    assert running["origin"] == "last row" and running["name"] is None
    with Store(state) as s:
        assert s.read("SELECT model_sha256 FROM faces ORDER BY id DESC LIMIT 1")[0][0] == running["sha256"]
        s.write_heartbeat({"fps": 9.7, "model_name": "default", "model_sha256": "ab" * 32, "model_origin": "shipped"})
    assert main(["status", "--state", str(state), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == {
        "running": {"name": "default", "sha256": "ab" * 32, "origin": "shipped"}, "installed": None}
    assert main(["status", "--state", str(state)]) == 0
    assert "model      default (sha256 abababababab...)" in capsys.readouterr().out


def test_status_check_fails_on_a_missing_crop(state, capsys):
    with Store(state, readonly=True) as s:
        s.crop_path(3).unlink()
    assert main(["status", "--state", str(state), "--check"]) == 1
    assert "row 3: crop" in capsys.readouterr().out


def test_export_through_the_real_cli_into_a_closed_pipe(state):
    """`python -m edge export | head -1`: no traceback when the reader stops early."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(f"{sys.executable} -m edge export --state {state} | head -1", shell=True, env=env,
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and json.loads(proc.stdout)["id"] == 1
    assert "Traceback" not in proc.stderr
