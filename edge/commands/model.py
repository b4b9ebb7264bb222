"""``moodcam model install|rollback|list|show``: the models installed on the device.

``install`` checks a model against its sidecar and the edge's contracts, classifies a test face
with it through LiteRT, copies it into the state directory so that a kill -9 at any moment leaves
the old or the new model current (edge.store.models), and asks a running daemon to switch
(SIGHUP; it finds the daemon through ``<state>/daemon.pid``), waiting until its heartbeat shows
the new model.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from edge.cliutil import EXIT_MODEL, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, report_error, report_note, write_line
from edge.commands.options import add_state_option, state_dir
from edge.config import ConfigError, load_config
from edge.contracts.modelfile import ModelFileError, load_sidecar
from edge.service.pidfile import running_daemon
from edge.store import models
from edge.store.files import make_private_dir
from edge.store.records import StoreError, iso_utc

HELP = "install a new model on the device (checked, atomic, the daemon switches), roll back, list, show"
DESCRIPTION = """Install a model exported by `moodcam-train export` (NAME.tflite with NAME.json beside it) into the
state directory, roll back to the one before, or list and show the installed models. The daemon
uses the installed model when the config's classifier.model is empty (config > installed >
shipped), and switches to a new one on SIGHUP (`systemctl reload moodcam`), which install and
rollback send it."""
EXIT_CODES = ("exit status: 0 done; 1 installed, but the running daemon did not confirm the switch within --wait; "
              "2 bad arguments, a state directory that cannot be written, nothing to roll back; 3 bad model: "
              "missing, tampered with, not matching its sidecar or the edge's contracts, or failing on the test face")
TEST_FACE_BOX = (175, 76, 91, 91)   # where dlib's HOG finds the face in scikit-image's astronaut photo
WAIT_S = 30.0


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    install = sub.add_parser("install", help="check a .tflite (and its .json) and make it the current model")
    install.add_argument("model", type=Path, metavar="MODEL.tflite", help="exported model; its .json beside it")
    install.add_argument("--force", action="store_true", help="install again even when this very file (same "
                         "sha256) is already the current model")
    rollback = sub.add_parser("rollback", help="make the model installed before the current one current again")
    listing = sub.add_parser("list", help="the installed models, oldest first; * marks the current one")
    show = sub.add_parser("show", help="one model: name, sha256, labels, input, metrics, when installed")
    show.add_argument("version", nargs="?", help="version folder, its number or a sha256 prefix (default: the "
                      "model the daemon uses)")
    for q in (install, rollback, listing, show):
        add_state_option(q)
        q.add_argument("--config", metavar="FILE", help="the daemon's config (default: /etc/moodcam/config.toml "
                       "if it exists): a classifier.model there wins over the installed model")
    for q in (install, rollback):
        q.add_argument("--wait", type=float, default=WAIT_S, metavar="S", help=f"wait this long for a running "
                       f"daemon to confirm the switch in its heartbeat (default {WAIT_S:g}; 0 = do not wait)")
    for q in (listing, show):
        q.add_argument("--json", action="store_true", help="one JSON object instead of text")


def run(args) -> int:
    command = f"moodcam model {args.action}"
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return report_error(command, exc, EXIT_USAGE)
    action = {"install": run_install, "rollback": run_rollback, "list": run_list, "show": run_show}[args.action]
    try:
        return action(args, state_dir(args), config.classifier.model, command)
    except ModelFileError as exc:
        return report_error(command, exc, EXIT_MODEL)
    except PermissionError as exc:
        return report_error(command, f"{exc}; run as the daemon's user (on the Pi: sudo -u moodcam "
                            "/opt/moodcam/venv/bin/moodcam model ...)", EXIT_USAGE)
    except (ValueError, OSError) as exc:
        return report_error(command, exc, EXIT_USAGE)


# ----------------------------------------------------------------------------- install / rollback
def try_on_test_face(path: Path) -> str:
    """Load ``path`` as the daemon would (sidecar, shapes, quantization) and classify a test face
    through LiteRT; ModelFileError if anything fails. Returns e.g. 'happy 0.61'."""
    import numpy as np
    from skimage import data

    from edge.vision.classify import Classifier

    classifier = Classifier(path, tta=True)
    try:
        prediction = classifier.classify(data.astronaut(), [TEST_FACE_BOX])[0]
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} fails on a test face ({exc}); re-export it") from None
    probs = np.asarray(prediction.probs)
    if not (np.all(np.isfinite(probs)) and np.all(probs >= 0) and abs(probs.sum() - 1.0) < 1e-3):
        raise ModelFileError(f"{path} gives no probabilities on a test face ({probs.tolist()}); re-export it")
    return f"{prediction.label} {prediction.confidence:.2f}"


def run_install(args, state: Path, configured: str, command: str) -> int:
    source = Path(args.model).expanduser()
    if source.suffix != ".tflite":
        return report_error(command, f"{source} is not a .tflite file; pass the NAME.tflite that "
                            "'moodcam-train export' wrote (its NAME.json beside it)", EXIT_USAGE)
    if not source.is_file():
        return report_error(command, f"{source} does not exist; copy NAME.tflite and NAME.json from the "
                            "desktop (scp models/NAME.* pi:) and pass the .tflite", EXIT_MODEL)
    meta = load_sidecar(source)                     # sha256, labels, crop: ModelFileError says which
    tried = try_on_test_face(source)
    make_private_dir(state)
    installed, changed = models.install(source, state, force=args.force)
    where = models.models_dir(state)
    if not changed:
        write_line(f"{meta.name} (sha256 {meta.tflite_sha256[:12]}...) is already the current model "
                   f"({installed.version} in {where}); --force installs it again")
        return EXIT_OK
    write_line(f"installed {meta.name} (sha256 {meta.tflite_sha256[:12]}..., test face: {tried}) as "
               f"{installed.version} in {where}; it is the current model now")
    return _tell_daemon(state, installed, configured, args.wait, command)


def run_rollback(args, state: Path, configured: str, command: str) -> int:
    before = models.find(state, None) if models.current_version(state) else None
    target = models.rollback(state)
    write_line(f"rolled back from {before.version if before else '?'} ({before.name if before else '?'}) to "
               f"{target.version} ({target.name}, sha256 {target.sha256[:12]}...)")
    return _tell_daemon(state, target, configured, args.wait, command)


def _tell_daemon(state: Path, model: models.InstalledModel, configured: str, wait_s: float, command: str) -> int:
    """SIGHUP the daemon on ``state`` and wait for its heartbeat to name the model (or say what to do)."""
    if configured:
        report_note(command, f"the config names classifier.model = {configured!r}, which wins over the installed "
                    "model: empty it (and restart the daemon) to use the installed one")
        return EXIT_OK
    pid = running_daemon(state)
    if pid is None:
        write_line(f"no daemon is running on {state}: it loads this model when it starts "
                   "(on the Pi: sudo systemctl restart moodcam)")
        return EXIT_OK
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        report_note(command, f"the daemon (pid {pid}) belongs to another user; switch it with "
                    "'sudo systemctl reload moodcam'")
        return EXIT_OK
    except ProcessLookupError:
        write_line(f"the daemon (pid {pid}) has just stopped; it loads this model when it starts")
        return EXIT_OK
    if wait_s <= 0:
        write_line(f"asked the daemon (pid {pid}) to switch (SIGHUP)")
        return EXIT_OK
    if _heartbeat_shows(state, model.sha256, wait_s):
        write_line(f"the daemon (pid {pid}) now runs {model.name} (sha256 {model.sha256[:12]}...)")
        return EXIT_OK
    report_note(command, f"asked the daemon (pid {pid}) to switch (SIGHUP), but its heartbeat does not show the new "
                f"model after {wait_s:g} s; see why with 'journalctl -u moodcam' (a model it cannot load is "
                "refused and the old one kept)")
    return EXIT_PARTIAL


def _heartbeat_shows(state: Path, sha256: str, wait_s: float) -> bool:
    from edge.store.database import Store

    deadline = time.monotonic() + wait_s
    while True:
        try:
            with Store(state, readonly=True) as store:
                if (store.read_heartbeat() or {}).get("model_sha256") == sha256:
                    return True
        except StoreError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


# ----------------------------------------------------------------------------- list / show
def run_list(args, state: Path, configured: str, command: str) -> int:
    versions = models.list_installed(state)
    resolved = _resolved(state, configured)
    if args.json:
        write_line(json.dumps({"state_dir": str(state), "current": models.current_version(state),
                               "daemon_uses": resolved, "models": [m.to_dict() for m in versions]}))
        return EXIT_OK
    for m in versions:
        write_line(f"{'*' if m.current else ' '} {m.version}  {m.name}  sha256 {m.sha256[:12]}...  installed "
                   f"{_iso(m.installed_at)}")
    if not versions:
        write_line(f"no model installed in {models.models_dir(state)}")
    write_line(f"the daemon uses: {resolved['path']} ({resolved['origin']})")
    return EXIT_OK


def run_show(args, state: Path, configured: str, command: str) -> int:
    if args.version:
        m = models.find(state, args.version)
        path, origin, installed = m.path, "installed", m
    else:
        r = models.resolve_model(configured, state)
        path, origin = r.path, r.origin
        installed = models.find(state, None) if origin == "installed" else None
    meta = load_sidecar(path)
    info = {"name": meta.name, "sha256": meta.tflite_sha256, "path": str(path), "origin": origin,
            "labels": list(meta.labels), "input": [1, meta.crop.size, meta.crop.size, 1], "crop": meta.crop.to_dict(),
            "metrics": meta.metrics, "data": meta.data,
            "version": installed.version if installed else None,
            "installed_at": _iso(installed.installed_at) if installed else None,
            "current": installed.current if installed else origin != "installed",
            "daemon_uses": _resolved(state, configured)["path"] == str(path)}
    if args.json:
        write_line(json.dumps(info))
        return EXIT_OK
    for key in ("name", "sha256", "path", "origin", "version", "installed_at", "current", "daemon_uses"):
        write_line(f"{key:<13}{info[key]}")
    write_line(f"{'labels':<13}{', '.join(info['labels'])}")
    write_line(f"{'input':<13}{info['input']} (crop {info['crop']})")
    for key, value in meta.metrics.items():
        write_line(f"{'metrics':<13}{key}: {json.dumps(value)}")
    return EXIT_OK


def _resolved(state: Path, configured: str) -> dict:
    r = models.resolve_model(configured, state)
    return {"path": str(r.path), "origin": r.origin}


def _iso(ts: float | None) -> str | None:
    return iso_utc(ts) if ts else None
