"""bench/scene.py: the scene's ground truth and the recall arithmetic, on synthetic sprites.

No shared data, no model, no timing: sprites are drawn here (a bright face box on a dark margin),
so where a face lands can be checked against the pixels.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scene_mod():
    spec = importlib.util.spec_from_file_location("bench_scene", REPO / "bench" / "scene.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def synthetic_sprites(scene_mod, n=6):
    """Sprites whose face box (of several aspects) is white and the margin black."""
    sprites = []
    for i in range(n):
        fw, fh = 60 + 10 * i, 70 + 5 * i
        image = np.zeros((fh * 2 + 20, fw * 2, 3), np.uint8)
        fx, fy = fw // 2, fh // 2 + 5
        image[fy:fy + fh, fx:fx + fw] = 255
        sprites.append(scene_mod.Sprite(image, (fx, fy, fw, fh), "happy" if i % 2 else "sad", f"s{i}"))
    return sprites


def test_scaling_keeps_the_aspect(scene_mod):
    sprite = synthetic_sprites(scene_mod)[3]
    for width in (28, 55, 160):
        image, (_, _, w, h) = scene_mod.scale_sprite(sprite, width)
        s = width / sprite.face[2]
        assert w == width
        assert h == pytest.approx(sprite.face[3] * s, abs=1)
        assert image.shape[1] / image.shape[0] == pytest.approx(sprite.image.shape[1] / sprite.image.shape[0], rel=0.02)


def test_true_boxes_are_where_the_faces_land(scene_mod):
    sprites = synthetic_sprites(scene_mod)
    scene = scene_mod.Scene(sprites, frames=40, size=(320, 240), seed=3, min_width=20, max_width=60, noise=0.0)
    counted = 0
    for i in range(0, 40, 3):
        frame, truths = scene.render(i)
        assert frame.shape == (240, 320, 3)
        assert 1 <= len(truths) <= 3
        for t in truths:
            x, y, w, h = t["box"]
            source = sprites[t["sprite"]].face
            assert h / w == pytest.approx(source[3] / source[2], abs=0.08)   # uniform scale
            if not t["counted"]:
                continue
            counted += 1
            inside = (max(0, x), max(0, y), min(320, x + w), min(240, y + h))
            assert (inside[2] - inside[0]) * (inside[3] - inside[1]) >= 0.7 * w * h
            # The middle of a wholly visible face is the sprite's white face, not background or margin.
            cy, cx = y + h // 2, x + w // 2
            if t["visible"] >= 0.99:
                assert frame[cy, cx].min() >= 200
    assert counted > 0


def test_widths_are_within_the_range(scene_mod):
    scene = scene_mod.Scene(synthetic_sprites(scene_mod), frames=400, size=(640, 480), seed=1,
                            min_width=28, max_width=160)
    widths = [a["width"] for a in scene.actors]
    assert min(widths) >= 28 and max(widths) <= 160
    assert {a["column"] for a in scene.actors} == {0, 1, 2}


def test_recall_on_hand_made_boxes(scene_mod):
    def truth(box, label="happy", counted=True):
        return {"box": list(box), "label": label, "counted": counted, "sprite": 0}

    truths = [
        [truth((0, 0, 30, 30)), truth((100, 100, 60, 60), "sad")],    # a <40 face and a 40-80 face
        [truth((200, 100, 100, 100)), truth((10, 10, 50, 50), counted=False)],   # >=80, and a half-hidden one
    ]
    reported = [
        [{"box": [2, 2, 30, 30], "label": "happy"},        # IoU 0.77: found, right label
         {"box": [130, 130, 60, 60], "label": "sad"}],     # IoU 0.14: a miss, and a false box
        [{"box": [230, 100, 100, 100], "label": "angry"},  # IoU 0.54: found, wrong label
         {"box": [10, 10, 50, 50], "label": "happy"},      # the ignored face: neither found nor false
         {"box": [500, 400, 40, 40], "label": "happy"}],   # nothing there: false
    ]
    s = scene_mod.score(truths, reported)
    assert s["true_face_frames"] == 3
    assert s["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["recall_by_width"] == {"<40": 1.0, "40-80": 0.0, ">=80": 1.0}
    assert s["recall_iou50"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["right_label"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["right_label_by_width"] == {"<40": 1.0, "40-80": 0.0, ">=80": 0.0}
    assert s["false_per_frame"] == 1.0


def test_one_reported_box_finds_one_face(scene_mod):
    truths = [[{"box": [0, 0, 40, 40], "label": "sad", "counted": True, "sprite": 0},
               {"box": [10, 0, 40, 40], "label": "sad", "counted": True, "sprite": 0}]]
    s = scene_mod.score(truths, [[{"box": [5, 0, 40, 40], "label": "sad"}]])
    assert s["recall"] == 0.5


def test_bad_arguments_are_one_line(scene_mod, capsys):
    assert scene_mod.main(["--size", "640by480"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["scene: error: --size '640by480' is not WxH, e.g. 640x480"]
    with pytest.raises(SystemExit) as exc:
        scene_mod.main(["--frames", "many"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("scene: error: argument --frames")


def pace_cost(full=1.2e9):
    """The parts of a ``bench/pi3_cost.py --json`` object that the Pi-3 pacing reads."""
    return {"items": {"scan_full min_face=32 upsample=1 width=640": {"instructions": full},
                      "motion": {"instructions": 1e6}},
            "region_fit": {"pi3": [6e6, 900.0]}, "round_check": {"pi3": {"overhead": 2e7}},
            "cpi": {"low": 1.0, "high": 1.2}, "clock_hz": 1.2e9}


def test_pi3_pace_holds_rounds_for_their_modelled_time(scene_mod, tmp_path):
    from edge.config import Config
    from edge.vision.scan import Region, ScanResult

    pace = scene_mod.Pi3Pace(pace_cost(), Config())
    full = ScanResult(0, (), (Region((0, 0, 640, 480), 1.0, "full"),), True, 0.0)
    assert pace.round_s(full) == pytest.approx(1.2e9 * 1.1 / 1.2e9)
    one = ScanResult(0, (), (Region((0, 0, 100, 100), 2.0, "motion"),), False, 0.0)
    two = ScanResult(0, (), (Region((0, 0, 100, 100), 2.0, "motion"), Region((200, 0, 50, 50), 1.0, "track")),
                     False, 0.0)
    assert pace.round_s(one) == pytest.approx((1e6 + 2e7 + 6e6 + 900 * 200 * 200) * 1.1 / 1.2e9)
    assert pace.round_s(two) == pytest.approx(pace.round_s(one) + (6e6 + 900 * 2500) * 1.1 / 1.2e9)
    # a config the cost model has no full scan for is refused with what to run
    bad = tmp_path / "cost.json"
    bad.write_text("log line\n" + __import__("json").dumps(pace_cost() | {"items": {}}))
    with pytest.raises(scene_mod.UsageError, match="pi3_cost.py --json"):
        scene_mod.load_pace(str(bad), Config())
