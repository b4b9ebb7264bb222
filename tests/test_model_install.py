"""``moodcam model install|rollback|list|show``, with real LiteRT models: the tiny fixture and the
shipped default. A tampered model is refused (exit 3); kill -9 at every step of an install, and at
random moments, leaves a model the daemon loads; a running daemon switches on SIGHUP."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.cli import main
from edge.contracts.modelfile import load_sidecar, sha256_of
from edge.service.pidfile import PidFile, running_daemon
from edge.store import models
from edge.store.database import Store
from edge.store.health import verify
from edge.vision.classify import Classifier

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "default.tflite"


def copy_model(src: Path, dst_dir: Path, name: str) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / f"{name}.tflite"
    shutil.copyfile(src, dst)
    shutil.copyfile(Path(src).with_suffix(".json"), dst.with_suffix(".json"))
    return dst


@pytest.fixture
def two_models(tiny_model, tmp_path) -> tuple[Path, Path]:
    """(the tiny fixture, the shipped model): two real models with different sha256s."""
    return copy_model(tiny_model, tmp_path / "a", "tiny"), copy_model(SHIPPED, tmp_path / "b", "default")


def cli(*args) -> int:
    return main([str(a) for a in args])


def run_cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "edge", *map(str, args)], check=False, capture_output=True, text=True,
                          cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, **kw)


def loaded_sha(state: Path) -> str:
    """What the daemon would load now (resolve_model + the real classifier)."""
    resolved = models.resolve_model("", state)
    return Classifier(resolved.path).meta.tflite_sha256


def test_install_list_show_rollback(two_models, tmp_path, capsys, monkeypatch):
    tiny, shipped = two_models
    state = tmp_path / "state"
    monkeypatch.setenv("MOODCAM_MODEL", str(shipped))           # the "shipped" tier, for the resolution order
    assert models.resolve_model("", state).origin == "shipped"
    assert cli("model", "install", tiny, "--state", state) == 0
    out = capsys.readouterr().out
    assert "installed tiny" in out and "test face:" in out and "no daemon is running" in out
    assert models.resolve_model("", state).origin == "installed"
    assert models.resolve_model(str(shipped), state) == models.ResolvedModel(shipped, "config")
    assert loaded_sha(state) == sha256_of(tiny)
    # The same file again: nothing to do, unless --force.
    assert cli("model", "install", tiny, "--state", state) == 0
    assert "already the current model" in capsys.readouterr().out
    assert cli("model", "install", shipped, "--state", state) == 0
    capsys.readouterr()
    assert loaded_sha(state) == sha256_of(shipped)

    assert cli("model", "list", "--state", state, "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listing["models"]] == ["tiny", "default"]
    assert [m["current"] for m in listing["models"]] == [False, True]
    assert listing["daemon_uses"]["origin"] == "installed" and listing["current"] == listing["models"][1]["version"]
    assert cli("model", "list", "--state", state) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("* 0002-")

    assert cli("model", "show", "--state", state, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    meta = load_sidecar(shipped)
    assert shown["name"] == "default" and shown["sha256"] == meta.tflite_sha256 and shown["current"] is True
    assert shown["labels"] == list(meta.labels) and shown["input"] == [1, 48, 48, 1]
    assert shown["metrics"] == meta.metrics and shown["installed_at"].endswith("Z") and shown["daemon_uses"]
    assert cli("model", "show", "0001", "--state", state, "--json") == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny"

    assert cli("model", "rollback", "--state", state) == 0
    assert "to 0001-" in capsys.readouterr().out
    assert loaded_sha(state) == sha256_of(tiny)
    assert cli("model", "rollback", "--state", state) == 2          # nothing before the oldest
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("moodcam model rollback: error: ") and "oldest" in err[0]
    assert cli("model", "show", "nope", "--state", state) == 2
    assert "no installed model nope" in capsys.readouterr().err


def test_the_config_model_wins_and_install_says_so(two_models, tmp_path, capsys):
    tiny, shipped = two_models
    config = tmp_path / "c.toml"
    config.write_text(f"[classifier]\nmodel = '{shipped}'\n")
    assert cli("model", "install", tiny, "--state", tmp_path / "s", "--config", config) == 0
    assert "classifier.model" in capsys.readouterr().err
    assert cli("model", "show", "--state", tmp_path / "s", "--config", config, "--json") == 0
    assert json.loads(capsys.readouterr().out)["origin"] == "config"


def tampered(kind: str, tiny: Path) -> Path:
    data, side = tiny.read_bytes(), json.loads(tiny.with_suffix(".json").read_text())
    if kind == "flipped byte":
        data = data[:500] + bytes([data[500] ^ 0xFF]) + data[501:]
    elif kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "labels":
        side["labels"] = side["labels"][::-1]
    elif kind == "input size":
        side["crop"]["size"] = 64
    elif kind == "quantization":
        side["input"]["zero_point"] += 1
    elif kind == "not a tflite":
        data = b"not a model at all" * 100
        side["tflite_sha256"] = __import__("hashlib").sha256(data).hexdigest()
    tiny.write_bytes(data)
    tiny.with_suffix(".json").write_text(json.dumps(side))
    if kind == "no sidecar":
        tiny.with_suffix(".json").unlink()
    return tiny


@pytest.mark.parametrize("kind", ["flipped byte", "truncated", "labels", "input size", "quantization",
                                  "not a tflite", "no sidecar"])
def test_a_tampered_model_or_sidecar_mismatch_is_refused_with_exit_3(kind, two_models, tmp_path, capsys):
    tiny, shipped = two_models
    state = tmp_path / "state"
    assert cli("model", "install", shipped, "--state", state) == 0
    capsys.readouterr()
    assert cli("model", "install", tampered(kind, tiny), "--state", state) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("moodcam model install: error: "), err
    assert [m.name for m in models.list_installed(state)] == ["default"]       # nothing new, still current
    assert loaded_sha(state) == sha256_of(shipped)


def test_missing_file_and_wrong_suffix(tmp_path, capsys):
    assert cli("model", "install", tmp_path / "none.tflite", "--state", tmp_path / "s") == 3
    assert cli("model", "install", tmp_path / "x.json", "--state", tmp_path / "s") == 2
    assert capsys.readouterr().err.count("error:") == 2


def test_old_versions_are_pruned_and_leftovers_removed(two_models, tmp_path, capsys):
    tiny, shipped = two_models
    state = tmp_path / "state"
    for i in range(5):
        assert cli("model", "install", tiny if i % 2 else shipped, "--state", state) == 0
    installed = models.list_installed(state)
    assert len(installed) == models.KEEP_VERSIONS and installed[-1].current
    assert [m.version[:4] for m in installed] == ["0003", "0004", "0005"]
    # What an interrupted install leaves is never taken for a version, and the next one removes it.
    (state / "models" / "installed" / ".new-dead").mkdir()
    (state / "models" / "installed" / ".old-0002-x").mkdir()
    assert len(models.list_installed(state)) == 3
    assert models.remove_leftovers(state) == 2


def test_pid_file_names_the_live_daemon_only(tmp_path):
    assert running_daemon(tmp_path) is None
    held = PidFile(tmp_path)
    assert held.acquire()
    assert running_daemon(tmp_path) == os.getpid()
    assert not PidFile(tmp_path).acquire()           # a second daemon on the same state does not take it
    held.release()
    assert running_daemon(tmp_path) is None
    (tmp_path / "daemon.pid").write_text("1\n")      # a stale file (its daemon was killed): not believed
    assert running_daemon(tmp_path) is None


def test_status_shows_the_running_and_the_installed_model(two_models, tmp_path, capsys):
    tiny, _ = two_models
    state = tmp_path / "state"
    with Store(state) as store:
        store.write_heartbeat({"frames": 1, "model_sha256": "ab" * 32, "model_name": "older"})
    assert cli("model", "install", tiny, "--state", state) == 0
    capsys.readouterr()
    assert cli("status", "--state", state, "--json") == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert model["running"] == {"name": "older", "sha256": "ab" * 32, "origin": None}
    assert model["installed"]["name"] == "tiny" and model["installed"]["sha256"] == sha256_of(tiny)
    assert cli("status", "--state", state) == 0
    assert "model      older (sha256 abababababab...); installed: 0001-" in capsys.readouterr().out


# --------------------------------------------------------------------------------------- kill -9
KILL_STEPS = ["start", "half-model.tflite", "tflite-copied", "half-model.json", "sidecar-copied",
              "half-install.json", "copied", "version-renamed", "link-made", "link-renamed", "switched",
              "pruning", "pruned"]
SWITCHED_FROM = KILL_STEPS.index("link-renamed")


def prepared_state(two_models, tmp_path) -> tuple[Path, Path, Path]:
    """A state with three versions installed, the shipped model current: the next install prunes one."""
    tiny, shipped = two_models
    state = tmp_path / "state"
    for m in (tiny, shipped):
        models.install(m, state)
    models.install(shipped, state, force=True)
    return state, tiny, shipped


@pytest.mark.slow
def test_kill_9_at_every_step_of_an_install_leaves_the_old_or_the_new_model(two_models, tmp_path):
    state, new, old = prepared_state(two_models, tmp_path)
    outcomes = {}
    for i, step in enumerate(KILL_STEPS):
        out = run_cli("model", "install", new, "--state", state, "--force", env={models.TEST_STOP_ENV: step})
        assert out.returncode == -signal.SIGKILL, (step, out.stderr)
        sha = loaded_sha(state)
        outcomes[step] = "new" if sha == sha256_of(new) else "old" if sha == sha256_of(old) else "neither"
        assert outcomes[step] == ("new" if i >= SWITCHED_FROM else "old"), (step, outcomes)
        if outcomes[step] == "new":                  # back to the old model for the next step
            models.install(old, state, force=True)
    print("kill -9 at each step:", outcomes)
    models.install(new, state, force=True)           # an install after all that works and tidies up
    assert loaded_sha(state) == sha256_of(new) and len(models.list_installed(state)) == models.KEEP_VERSIONS
    assert not [p for p in (state / "models" / "installed").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_a_loadable_model(two_models, tmp_path):
    """20 installs killed after random delays over the whole run (most land in the imports and
    checks, some in the copy and switch): every time, the daemon loads the old or the new model."""
    state, new, old = prepared_state(two_models, tmp_path)
    begun = time.monotonic()
    assert run_cli("model", "install", new, "--state", state, "--force").returncode == 0
    full = time.monotonic() - begun
    models.install(old, state, force=True)
    rng = random.Random(20)
    outcomes = {"old": 0, "new": 0, "killed": 0, "finished": 0}
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, "-m", "edge", "model", "install", str(new), "--state", str(state),
                                 "--force"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.1) * full)
        proc.send_signal(signal.SIGKILL)
        outcomes["finished" if proc.wait() == 0 else "killed"] += 1
        sha = loaded_sha(state)
        assert sha in (sha256_of(new), sha256_of(old))
        outcomes["new" if sha == sha256_of(new) else "old"] += 1
        if sha == sha256_of(new):
            models.install(old, state, force=True)
    print(f"kill -9 after random delays (full install {full:.1f} s):", outcomes)
    assert outcomes["old"] + outcomes["new"] == 20


# --------------------------------------------------------------------------------------- SIGHUP
def wait_for(predicate, timeout: float = 240.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rows_by_model(state: Path) -> dict[str, int]:
    try:
        with Store(state, readonly=True) as store:
            return dict(store.read("SELECT model_sha256, COUNT(*) FROM faces GROUP BY model_sha256"))
    except Exception:   # noqa: BLE001 - the daemon has not created the store yet
        return {}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_running_daemon_switches_on_sighup_and_keeps_every_row(two_models, tmp_path):
    tiny, shipped = two_models
    state = tmp_path / "state"
    config = tmp_path / "c.toml"
    config.write_text("[logging]\nmin_interval_s = 0.0\n[camera]\nfps = 10.0\n[systemd]\nnotify = false\n")
    models.install(tiny, state)
    old, new = sha256_of(tiny), sha256_of(shipped)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--source", "demo", "--state", str(state),
                             "--config", str(config)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for(lambda: rows_by_model(state).get(old, 0) >= 3, what="rows from the first model")
        assert running_daemon(state) == proc.pid
        out = run_cli("model", "install", shipped, "--state", state, "--config", config, "--wait", "120")
        assert out.returncode == 0, out.stderr
        assert f"the daemon (pid {proc.pid}) now runs default" in out.stdout
        before = rows_by_model(state)
        wait_for(lambda: rows_by_model(state).get(new, 0) >= 3, what="rows from the new model")
        # A model it cannot load: the daemon says why and keeps the one it has.
        broken = state / "models" / "installed" / "0099-broken"
        shutil.copytree(state / "models" / "installed" / models.current_version(state), broken)
        (broken / "model.tflite").write_bytes(b"garbage")
        os.symlink("installed/0099-broken", state / "models" / ".current-x")
        os.replace(state / "models" / ".current-x", state / "models" / "current")
        count = rows_by_model(state).get(new, 0)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: rows_by_model(state).get(new, 0) >= count + 5, what="rows after a failed reload")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "SIGHUP: model" in stderr and "was not reloaded" in stderr
    after = rows_by_model(state)
    assert after[old] >= before[old] and after[new] > count and set(after) == {old, new}
    with Store(state) as store:
        assert verify(store) == []
        assert store.read_heartbeat()["model_sha256"] == new


def test_install_exits_1_when_the_running_daemon_does_not_confirm(two_models, tmp_path, capsys):
    """A process that holds the daemon's pid file but never switches (SIGHUP ignored): the model is
    installed, and install says the daemon did not confirm, with exit status 1."""
    tiny, _ = two_models
    state = tmp_path / "state"
    state.mkdir()
    script = ("import signal, time\nfrom edge.service.pidfile import PidFile\n"
              "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
              f"assert PidFile({str(state)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli("model", "install", tiny, "--state", state, "--wait", "1") == 1
        captured = capsys.readouterr()
        assert f"asked the daemon (pid {holder.pid}) to switch" in captured.err
        assert models.find(state, None).name == "tiny"
    finally:
        holder.kill()
        holder.wait()
