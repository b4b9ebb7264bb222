"""The daemon's TOML config: defaults, the example file, and errors that name key, value and fix."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edge.config import Config, ConfigError, documented_keys, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "deploy" / "config.example.toml"


def test_empty_file_gives_all_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("")
    assert load_config(path) == Config()


def test_example_config_validates_and_documents_every_key_with_its_default():
    config = load_config(EXAMPLE)
    assert config == Config(), "config.example.toml must show the built-in defaults"
    data = tomllib.loads(EXAMPLE.read_text())
    text = EXAMPLE.read_text()
    for key, default, doc in documented_keys():
        section, name = key.split(".")
        assert name in data.get(section, {}), f"{key} is not in {EXAMPLE.name}"
        assert doc, f"{key} has no description"
        # the description precedes the key as a comment
        block = text.split(f"[{section}]", 1)[1].split(f"\n{name} =", 1)[0].rsplit("\n\n", 1)[-1]
        assert block.strip().startswith("#"), f"{key} has no comment above it in {EXAMPLE.name}"


def test_values_are_read(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[camera]\nsource = "dir:/tmp/x"\nfps = 5\n[detector]\nevery_n_frames = 3\n'
                    '[logging]\nmin_interval_s = 0\n[systemd]\nnotify = false\n')
    c = load_config(path)
    assert (c.camera.source, c.camera.fps, c.detector.every_n_frames) == ("dir:/tmp/x", 5.0, 3)
    assert c.logging.min_interval_s == 0.0 and c.systemd.notify is False
    assert isinstance(c.camera.fps, float)


def test_typo_in_key_names_dotted_path_and_suggests(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[detector]\nupsmaple = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "detector.upsmaple" in msg and "did you mean 'detector.upsample'" in msg


def test_typo_in_section_suggests_section():
    with pytest.raises(ConfigError, match=r"unknown key 'detecter'; did you mean 'detector'"):
        parse_config({"detecter": {"upsample": 1}})


@pytest.mark.parametrize("data, pattern", [
    ({"detector": {"upsample": -1}}, r"detector\.upsample = -1 is invalid: must be >= 0"),
    ({"detector": {"upsample": "two"}}, r"detector\.upsample = 'two' is invalid: expected an integer"),
    ({"detector": {"upsample": True}}, r"detector\.upsample = true is invalid: expected an integer"),
    ({"camera": {"fps": "fast"}}, r"camera\.fps = 'fast' is invalid: expected a number"),
    ({"classifier": {"batch": "loops"}}, r"classifier\.batch = 'loops' is invalid: must be one of .*did you mean 'loop'"),
    ({"camera": {"source": "fiel:/x.mp4"}}, r"camera\.source = 'fiel:/x.mp4' is invalid: .*did you mean 'file'"),
    ({"camera": {"source": "v4l2:front"}}, r"camera\.source = 'v4l2:front' is invalid: 'v4l2:' needs a device number"),
    ({"camera": "demo"}, r"camera must be a table"),
    ({"retention": {"max_age_days": 60, "reviewed_max_age_days": 7}},
     r"retention\.reviewed_max_age_days = 7.* is shorter than retention\.max_age_days"),
    ({"systemd": {"notify": "yes"}}, r"systemd\.notify = 'yes' is invalid: expected true or false"),
])
def test_bad_values_name_key_value_and_rule(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_config(data)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera\nsource = 'demo'\n")
    with pytest.raises(ConfigError, match=re.escape(str(bad)) + ": not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_check_config_command(tmp_path):
    good = subprocess.run([sys.executable, "-m", "edge", "check-config", str(EXAMPLE)], capture_output=True,
                          text=True, cwd=REPO)
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "c.toml"
    bad.write_text("[tracker]\nema_alfa = 0.5\n")
    out = subprocess.run([sys.executable, "-m", "edge", "check-config", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert "tracker.ema_alfa" in out.stderr and "did you mean 'tracker.ema_alpha'" in out.stderr
