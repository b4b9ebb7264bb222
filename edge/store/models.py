"""Models installed on the device with ``moodcam model install``, under the state directory.

Layout (``<state>/models/``; install.sh's ``default.tflite`` + ``.json`` sit beside it)::

    installed/0003-1a2b3c4d5e6f/model.tflite   one folder a version: the pair and install.json,
    installed/0003-1a2b3c4d5e6f/model.json     never changed once it has its name
    installed/0003-1a2b3c4d5e6f/install.json   name, sha256, when and from where it was installed
    current -> installed/0003-1a2b3c4d5e6f     a relative symlink: the model the daemon loads

The one invariant: ``current`` only ever names a complete, fsynced version folder. A version is
copied into a hidden ``.new-*`` folder, every file fsynced, then renamed to its final name, and
only then is ``current`` replaced by renaming a new symlink over it (atomic on POSIX). So a
``kill -9`` or power cut at any moment leaves ``current`` on the old version or on the new one,
never on a half-copied pair; a leftover ``.new-*`` or ``.old-*`` folder is removed by the next
install. Old versions are deleted by renaming them to ``.old-*`` first, so a half-deleted folder
never looks like a version. Rollback moves ``current`` to the newest version older than it.

Which model the daemon uses (:func:`resolve_model`): ``classifier.model`` of the config when it
names one, else ``current`` here, else the shipped default (``$MOODCAM_MODEL`` or
models/default.tflite of the checkout).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edge.contracts.modelfile import ModelFileError, ModelMeta, default_model_path, load_sidecar
from edge.store.files import fsync_dir
from edge.store.records import iso_utc

MODELS_DIR = "models"
INSTALLED_DIR = "installed"
CURRENT_LINK = "current"
MODEL_FILE = "model.tflite"
INSTALL_RECORD = "install.json"
KEEP_VERSIONS = 3     # the current model, the one before it (rollback) and one more; older ones are deleted
TEST_STOP_ENV = "MOODCAM_TEST_KILL_AT"   # tests only: SIGKILL this process at the named step


def _step(name: str) -> None:
    """A named point of the install; the kill -9 test stops the process exactly here."""
    if os.environ.get(TEST_STOP_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class InstalledModel:
    version: str          # the folder name: NNNN-<first 12 of sha256>
    path: Path            # its model.tflite
    name: str
    sha256: str
    installed_at: float
    source: str           # the path it was installed from
    current: bool

    def to_dict(self, meta: ModelMeta | None = None) -> dict:
        out = {"version": self.version, "name": self.name, "sha256": self.sha256, "path": str(self.path),
               "installed_at": iso_utc(self.installed_at), "source": self.source, "current": self.current}
        if meta is not None:
            out.update({"labels": list(meta.labels), "input": [1, meta.crop.size, meta.crop.size, 1],
                        "crop": meta.crop.to_dict(), "metrics": meta.metrics, "data": meta.data})
        return out


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    origin: str           # "config", "installed" or "shipped"


def models_dir(state_dir: Path) -> Path:
    return Path(state_dir) / MODELS_DIR


def _installed_dir(state_dir: Path) -> Path:
    return models_dir(state_dir) / INSTALLED_DIR


def current_version(state_dir: Path) -> str | None:
    """The version folder ``current`` names, or None when nothing was installed."""
    link = models_dir(state_dir) / CURRENT_LINK
    try:
        return Path(os.readlink(link)).name
    except (FileNotFoundError, OSError):
        return None


def current_model(state_dir: Path) -> Path | None:
    """The installed model's .tflite (through the resolved symlink, so its sidecar is read from
    the same folder even if ``current`` moves meanwhile), or None when nothing was installed."""
    version = current_version(state_dir)
    if version is None:
        return None
    path = _installed_dir(state_dir) / version / MODEL_FILE
    if not path.is_file():
        raise ModelFileError(f"the installed model {path} is missing (the state directory was changed by hand?); "
                             "run 'moodcam model rollback' or install a model again")
    return path


def resolve_model(explicit: str | os.PathLike | None, state_dir: Path) -> ResolvedModel:
    """The model to load: explicit (the config's classifier.model or --model) > installed > shipped."""
    if explicit:
        return ResolvedModel(Path(explicit), "config")
    installed = current_model(state_dir)
    if installed is not None:
        return ResolvedModel(installed, "installed")
    return ResolvedModel(default_model_path(), "shipped")


def list_installed(state_dir: Path) -> list[InstalledModel]:
    """Every installed version, oldest first; hidden leftovers of an interrupted install are not versions."""
    folder = _installed_dir(state_dir)
    current = current_version(state_dir)
    out = []
    for sub in sorted(folder.iterdir()) if folder.is_dir() else ():
        if sub.name.startswith(".") or not sub.is_dir():
            continue
        try:
            record = json.loads((sub / INSTALL_RECORD).read_text())
        except (OSError, ValueError):
            record = {}
        out.append(InstalledModel(sub.name, sub / MODEL_FILE, str(record.get("name", "?")),
                                  str(record.get("sha256", "")), float(record.get("installed_at", 0.0)),
                                  str(record.get("source", "")), sub.name == current))
    return out


def _write_durable(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        half = len(view) // 2
        while len(view) > half:
            view = view[os.write(fd, view[: len(view) - half]):]
        _step(f"half-{path.name}")
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _give_to_owner(paths: list[Path], state_dir: Path) -> None:
    """Run as root (sudo): hand what was created to the state directory's owner, so the daemon's
    user can read and later prune it."""
    if os.geteuid() != 0:
        return
    st = os.stat(state_dir)
    for p in paths:
        os.chown(p, st.st_uid, st.st_gid, follow_symlinks=False)


def _next_version(folder: Path, sha256: str) -> str:
    numbers = [int(p.name.split("-")[0]) for p in folder.iterdir() if p.name[:4].isdigit()]
    return f"{max(numbers, default=0) + 1:04d}-{sha256[:12]}"


def remove_leftovers(state_dir: Path) -> int:
    """Delete what an interrupted install or prune left (hidden ``.new-*``/``.old-*`` folders,
    ``.current-*`` links); returns how many."""
    n = 0
    for folder, prefixes in ((_installed_dir(state_dir), (".new-", ".old-")), (models_dir(state_dir), (".current-",))):
        for p in folder.iterdir() if folder.is_dir() else ():
            if p.name.startswith(prefixes):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                n += 1
    return n


def _point_current(state_dir: Path, version: str) -> None:
    """Replace the ``current`` link atomically: a new link beside it, renamed over it, then fsync."""
    folder = models_dir(state_dir)
    tmp = folder / f".current-{secrets.token_hex(4)}"
    os.symlink(Path(INSTALLED_DIR) / version, tmp)
    _give_to_owner([tmp], state_dir)
    _step("link-made")
    os.replace(tmp, folder / CURRENT_LINK)
    _step("link-renamed")
    fsync_dir(folder)


def install(source: Path, state_dir: Path, *, force: bool = False) -> tuple[InstalledModel, bool]:
    """Copy ``source`` (.tflite + its sidecar, already checked by the caller) into a new version and
    make it current. Returns (the version, whether anything changed): a model whose sha256 is already
    current is left alone unless ``force``. Raises ModelFileError if the copy does not verify."""
    source = Path(source)
    meta = load_sidecar(source)
    folder = _installed_dir(state_dir)
    for d in (models_dir(state_dir), folder):
        if not d.is_dir():
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
            _give_to_owner([d], state_dir)
            fsync_dir(d.parent)
    remove_leftovers(state_dir)
    current = next((m for m in list_installed(state_dir) if m.current), None)
    if current is not None and current.sha256 == meta.tflite_sha256 and not force:
        return current, False
    _step("start")
    tmp = folder / f".new-{secrets.token_hex(4)}"
    tmp.mkdir(mode=0o755)
    data = source.read_bytes()
    _write_durable(tmp / MODEL_FILE, data)
    _step("tflite-copied")
    _write_durable(tmp / "model.json", source.with_suffix(".json").read_bytes())
    _step("sidecar-copied")
    record = {"name": meta.name, "sha256": meta.tflite_sha256, "installed_at": time.time(),
              "source": str(source.resolve())}
    _write_durable(tmp / INSTALL_RECORD, (json.dumps(record, indent=2) + "\n").encode())
    load_sidecar(tmp / MODEL_FILE)                  # the copy itself verifies (sha256 of what is on disk)
    fsync_dir(tmp)
    _give_to_owner([tmp, *tmp.iterdir()], state_dir)
    _step("copied")
    version = _next_version(folder, meta.tflite_sha256)
    os.rename(tmp, folder / version)
    fsync_dir(folder)
    _step("version-renamed")
    _point_current(state_dir, version)
    _step("switched")
    prune(state_dir)
    _step("pruned")
    return next(m for m in list_installed(state_dir) if m.version == version), True


def prune(state_dir: Path, keep: int = KEEP_VERSIONS) -> list[str]:
    """Delete all but the ``keep`` newest versions (never the current one); returns the deleted."""
    versions = list_installed(state_dir)
    doomed = [m for m in versions[:-keep] if not m.current] if len(versions) > keep else []
    folder = _installed_dir(state_dir)
    for m in doomed:
        hidden = folder / f".old-{m.version}"
        os.rename(folder / m.version, hidden)       # a half-deleted folder is never taken for a version
        fsync_dir(folder)
        _step("pruning")
        shutil.rmtree(hidden, ignore_errors=True)
    return [m.version for m in doomed]


def rollback(state_dir: Path) -> InstalledModel:
    """Make the newest version older than the current one current again (checked first)."""
    versions = list_installed(state_dir)
    position = next((i for i, m in enumerate(versions) if m.current), None)
    if position is None:
        raise ValueError(f"no installed model in {models_dir(state_dir)}; nothing to roll back "
                         "(the daemon uses the config's or the shipped model)")
    if position == 0:
        raise ValueError(f"{versions[0].version} ({versions[0].name}) is the oldest installed model; "
                         "there is nothing before it to roll back to (install one with 'moodcam model install')")
    target = versions[position - 1]
    load_sidecar(target.path)                       # a damaged old copy is refused, not switched to
    _point_current(state_dir, target.version)
    return next(m for m in list_installed(state_dir) if m.version == target.version)


def find(state_dir: Path, which: str | None) -> InstalledModel:
    """An installed version by its folder name, its number, a sha256 prefix, or None: the current one."""
    versions = list_installed(state_dir)
    for m in versions:
        if (which is None and m.current) or (which is not None and (
                which == m.version or which.lstrip("0") == m.version.split("-")[0].lstrip("0")
                or (len(which) >= 6 and m.sha256.startswith(which)))):
            return m
    known = ", ".join(m.version for m in versions) or "none"
    raise ValueError(f"no installed model {which or '(current)'} in {models_dir(state_dir)} (installed: {known})")

