"""Scene thumbnails: a small JPEG of the whole frame kept with a logged face (logging.scene_width),
written 0600 like its crop, deleted with its row, served by id, and old stores migrated to hold them."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from edge.store import schema
from edge.store.database import Store
from edge.store.health import disk_usage, verify
from edge.store.records import FaceRecord, scene_thumbnail
from tests.review_support import MODEL_SHA, synthetic_face


def _record(i: int, ts: float = 1_795_000_000.0) -> FaceRecord:
    probs = {label: 1 / 7 for label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
    return FaceRecord(ts=ts + i, frame=i, track=1, box=(10, 10, 40, 40), label="happy", confidence=0.5,
                      probs=probs, model_sha256=MODEL_SHA, source="test")


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (480, 640, 3), dtype=np.uint8)


def test_scene_is_written_private_served_and_deleted_with_its_row(tmp_path):
    from fastapi.testclient import TestClient
    from PIL import Image

    from edge.review.server import create_app
    from edge.review.storesource import StoreSource

    state = tmp_path / "state"
    with Store(state) as store:
        with_scene = store.log_face(_record(0), synthetic_face(0), scene_thumbnail(_frame(), 160))
        without = store.log_face(_record(1), synthetic_face(1))
        face = store.get(with_scene)
        path = state / face.scene_file
        assert face.scene_file.endswith(".jpg") and path.stat().st_mode & 0o777 == 0o600
        assert face.scene_bytes == path.stat().st_size and store.get(without).scene_file is None
        with Image.open(path) as im:
            assert im.size == (160, 120)
        assert disk_usage(store)["crops_bytes"] == face.crop_bytes + face.scene_bytes + store.get(without).crop_bytes
        assert verify(store) == []
    with Store(state) as store:                 # start-up cleanup keeps a scene that has its row
        assert path.exists() and store.startup_cleanup["orphan_crops"] == 0

    source = StoreSource(state)
    try:
        client = TestClient(create_app(source), base_url="http://127.0.0.1")
        item = client.get(f"/api/faces/{with_scene}").json()
        assert item["scene"] is True and item["scene_url"] == f"/api/faces/{with_scene}/scene"
        got = client.get(item["scene_url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == path.read_bytes()
        assert client.get(f"/api/faces/{without}").json()["scene_url"] is None
        assert client.get(f"/api/faces/{without}/scene").status_code == 404
    finally:
        source.close()

    with Store(state) as store:
        other = store.get(without).crop_bytes
        assert store.delete_faces([with_scene, without]) == (2, face.crop_bytes + face.scene_bytes + other)
        assert not path.exists() and store.count() == 0


def test_a_store_of_schema_1_is_migrated_and_keeps_its_rows(tmp_path):
    state = tmp_path / "state"
    with Store(state) as store:
        face_id = store.log_face(_record(0), synthetic_face(0))
    db = sqlite3.connect(state / "moodcam.db")    # take it back to schema 1, as an older moodcam left it
    db.execute("ALTER TABLE faces DROP COLUMN scene_bytes")
    db.execute("ALTER TABLE faces DROP COLUMN scene_file")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(state) as store:
        assert store.read("PRAGMA user_version")[0][0] == schema.SCHEMA_VERSION == 2
        old = store.get(face_id)
        assert old.scene_file is None and old.scene_bytes == 0 and verify(store) == []
        new = store.log_face(_record(1), synthetic_face(1), scene_thumbnail(_frame(), 160))
        assert store.get(new).scene_file and verify(store) == []


@pytest.mark.slow   # the real daemon in a subprocess
@pytest.mark.timeout(900)
def test_the_daemon_keeps_a_scene_with_each_face_when_configured(tiny_model, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    from edge.capture.sources import DemoSource
    from tests.review_support import REPO

    folder = tmp_path / "pics"
    folder.mkdir()
    demo = DemoSource(640, 480)
    demo.open()
    for i in range(3):
        Image.fromarray(demo.read()).save(folder / f"{i}.png")
    config = tmp_path / "c.toml"
    config.write_text("[logging]\nmin_interval_s = 0\nscene_width = 160\n")
    state = tmp_path / "state"
    out = subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(config), "--source", f"dir:{folder}",
                          "--state", str(state), "--model", str(tiny_model)], capture_output=True, text=True, check=False,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["logged"] == 3
    with Store(state) as store:
        faces = store.faces()
        assert len(faces) == 3 and all(f.scene_file for f in faces) and verify(store) == []
        for face in faces:
            with Image.open(state / face.scene_file) as im:
                assert im.size == (160, 120) and im.format == "JPEG"
