"""Random command lines for both programs, drawn from each command's own argparse options.

The parsers are introspected (edge.cliutil.run_cli builds them the same way), so a new option is
fuzzed without touching this file. Values come from pools by the option's type: paths from a
sandbox of awkward files (empty, truncated, huge-ish, not pictures, folders of mixed content,
symlinks, a small store, missing paths and missing parents), numbers around their edges
(negative, zero, NaN, infinite, huge), choices plus a wrong one. ``@/`` in a token stands for
the sandbox, which each example gets afresh (a copy of one template).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from edge.cliutil import SuggestingParser

REPO = Path(__file__).resolve().parents[1]

# Paths in the sandbox (see make_template); "new*" and "missing/..." do not exist.
PATHS = ["pic.png", "pictures", "store", "m/default.tflite", "mixed", "new.npz", "out", "face.jpg", "trunc.png", "empty.png", "notes.txt", "big.bin", "data.npz", "bad.npz",
         "config.toml", "bad.toml", "nul.csv", "labels.json", "Happy+Human+Faces", "emptydir",
         "link-pic.png", "link-dir", "broken-link", "loop", "m/default.json", "run", "new.jsonl", "newdir", "missing/child.npz", "missing/dir", "store/moodcam.db",
         "readonly/x.npz"]
INTS = [1, 2, 0, -1, 3, 64, 10**9]
FLOATS = ["0.1", "0", "0.3", "1", "nan", "inf", "-inf", "-1", "2.5", "1e308"]
TEXT = ["x", "", "1", "-", "auto", "none", "2026-01-01", "1700000000", "nan", "@/pic.png", "é", "a b"]
SOURCES = ["file:@/pic.png", "demo", "file:@/notes.txt", "file:@/missing/x.png", "dir:@/mixed", "dir:@/emptydir",
           "dir:@/pictures", "fiel:x", ""]
PATH_DESTS = {"paths", "file", "out", "state", "folder", "config", "model", "report", "data", "pictures", "path",
              "run", "val", "test", "init", "legacy_state"}
# Values for options whose range decides how long a run takes; everything else uses the pools.
BOUNDED = {
    ("run", "max_frames"): ["1", "2", "0", "-1"],
    ("ingest", "workers"): ["1", "-1"],
    ("ingest", "upsample"): ["0", "1", "-1", "4"],
    ("ingest", "angles"): ["15", "-30", "nan"],
    ("classify", "upsample"): ["0", "1", "-1", "4"],
    ("evaluate", "upsample"): ["0", "1", "-1", "4"],
    ("evaluate", "limit"): ["3", "1", "0", "-1"],
    ("evaluate", "threads"): ["1", "0", "-1"],
    ("ingest", "label_map"): ["mixed=happy", "x=joy", "@/labels.json", "noequals", "@/bad.toml"],
    ("export", "since"): TEXT, ("export", "until"): TEXT,
    ("ingest", "size"): ["48", "1", "0", str(10**9)],
    ("split-pictures", "heldout"): ["0.5", "0", "1", "nan", "-1"],
}
_ALL_PATHS = [f"@/{p}" for p in PATHS] + ["../outside/x", "/nonexistent/x"]
for _key, _first in ((("evaluate", "model"), ["@/m/default.tflite"]), (("classify", "model"), ["@/m/default.tflite"]),
                     (("model", "model"), ["@/m/default.tflite", "@/pic.png"]),
                     (("evaluate", "data"), ["@/pictures", "@/data.npz"]), (("export", "out"), ["@/new.jsonl"]),
                     (("ingest", "out"), ["@/new.npz", "@/out/x.npz"]), (("dataset", "out"), ["@/newdir"]),
                     *(((c, "state"), ["@/store"]) for c in ("status", "export", "dataset"))):
    BOUNDED[_key] = _first + [p for p in _ALL_PATHS if p not in _first]
# Options a command always gets, so that it stops by itself and stays in the sandbox.
FORCED = {"run": {"--source": SOURCES, "--max-frames": ["1", "2"], "--state": ["@/store", "@/newdir", "@/out"]},
          # model install/rollback never wait for a daemon (there is none) and stay in a named state dir
          "model": {"--state": ["@/store", "@/newdir", "@/emptydir", "@/missing/dir"], "--wait": ["0"]}}


@dataclass
class Counts:
    """Examples tried per command and the exit codes they ended with."""
    tried: dict[str, int] = field(default_factory=dict)
    codes: dict[str, dict[int, int]] = field(default_factory=dict)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)   # the error lines, by their first words
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, command: str, code: int, stderr: str = "") -> None:
        lines = [line for line in stderr.splitlines() if ": error: " in line]
        if lines:
            key = " ".join(lines[-1].split(": error: ", 1)[1].split()[:4])
            per_answer = self.answers.setdefault(command, {})
            per_answer[key] = per_answer.get(key, 0) + 1
        self.tried[command] = self.tried.get(command, 0) + 1
        per = self.codes.setdefault(command, {})
        per[code] = per.get(code, 0) + 1


def command_parser(prog: str, name: str, module_path: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_path)
    parser = SuggestingParser(prog=f"{prog} {name}", add_help=True)
    module.add_arguments(parser)
    return parser


def _value_pool(command: str, action: argparse.Action) -> list[str]:
    if (command, action.dest) in BOUNDED:
        return BOUNDED[(command, action.dest)]
    if action.dest == "source":
        return SOURCES
    if action.choices:
        return [*map(str, action.choices), "bogus"]
    if action.type is int:
        return list(map(str, INTS))
    if action.type is float:
        return FLOATS
    if action.type is Path or action.dest in PATH_DESTS or (action.metavar or "") in {"FILE", "DIR", "TFLITE", "DATA"}:
        return _ALL_PATHS
    return TEXT


def _values(command: str, action: argparse.Action, careful: bool = False) -> st.SearchStrategy[list[str]]:
    values = _value_pool(command, action)
    pool = st.sampled_from(values[:3] if careful else values)
    nargs = action.nargs
    if nargs == 0:
        return st.just([])
    if nargs is None:
        return pool.map(lambda v: [v])
    if nargs == "?":
        return st.lists(pool, max_size=1)
    if nargs == "+":
        return st.lists(pool, min_size=1, max_size=3)
    if nargs == "*":
        return st.lists(pool, max_size=3)
    return st.lists(pool, min_size=int(nargs), max_size=int(nargs))


def argv_strategy(prog: str, commands: dict[str, tuple[str, str]], name: str):
    """(command, argv) pairs for one command: its positionals, some of its options (required ones
    usually), in a shuffled order, now and then an unknown option."""
    parsers = {name: command_parser(prog, name, commands[name][0])}

    forced = FORCED.get(name, {})

    def draw_tokens(draw, parser, careful: bool) -> tuple[list[str], list[list[str]]]:
        """Positionals and options for ``parser``; a subcommand (``model install``) is drawn and its own
        parser walked in turn, so its options are drawn as well."""
        positional, options = [], []
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                sub = draw(st.sampled_from(sorted(action.choices)))
                more, opts = draw_tokens(draw, action.choices[sub], careful)
                positional += [sub, *more]
                options += opts
                continue
            if not action.option_strings:
                positional += draw(_values(name, action, careful))
                continue
            if action.option_strings[0] in forced:
                options.append([action.option_strings[0], draw(st.sampled_from(forced[action.option_strings[0]]))])
                continue
            path_like = _value_pool(name, action)[0].startswith("@/")
            if careful:   # the options that name what to work on, rarely anything else
                chance = 0.95 if action.required else 0.8 if path_like and (name, action.dest) in BOUNDED else 0.05
            else:
                chance = 0.95 if action.required else 0.6 if path_like else 0.25
            if draw(st.floats(0, 1)) < chance:
                flag = draw(st.sampled_from(action.option_strings))
                options.append([flag, *draw(_values(name, action, careful))])
        return positional, options

    @st.composite
    def command_line(draw):
        careful = draw(st.integers(0, 2)) == 0   # a third of the command lines: plausible values, few options
        positional, options = draw_tokens(draw, parsers[name], careful)
        options = draw(st.permutations(options))
        argv = [name, *positional, *(token for option in options for token in option)]
        if not careful and draw(st.integers(0, 9)) == 0:
            argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--", "-"])))
        return name, argv

    return command_line()


# ---------------------------------------------------------------- the sandbox

def make_template(root: Path) -> Path:
    """A sandbox of awkward inputs (and a small store) under ``root``/sandbox; returns it."""
    from PIL import Image

    from edge.store.database import Store
    from tests.review_support import fill_store, synthetic_face
    from trainer.data.datasets import FaceDataset, save_npz

    box = root / "sandbox"
    box.mkdir(parents=True)
    (root / "outside").mkdir()
    face = Image.fromarray(synthetic_face(1, 96)).convert("RGB")
    canvas = Image.new("RGB", (160, 140), (120, 130, 140))
    canvas.paste(face, (30, 20))
    canvas.save(box / "pic.png")
    canvas.save(box / "face.jpg", quality=85)
    (box / "trunc.png").write_bytes((box / "pic.png").read_bytes()[:200])
    (box / "empty.png").write_bytes(b"")
    (box / "notes.txt").write_text("not a picture\n")
    (box / "big.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 2 * 2**20, dtype=np.uint8).tobytes())
    faces = np.stack([synthetic_face(i) for i in range(8)])
    save_npz(FaceDataset(faces, np.arange(8) % 7, np.array([f"f{i}" for i in range(8)]), -np.ones((8, 4), int)),
             box / "data.npz")
    (box / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    (box / "nul.csv").write_bytes(b"emotion,pixels,Usage\n0,\x00\x00,Training\n")
    (box / "config.toml").write_text('[camera]\nsource = "demo"\n[logging]\nlevel = "warning"\n')
    (box / "bad.toml").write_text("[camera\nsource = 3\n")
    (box / "labels.json").write_text(json.dumps({"mixed": "happy", "sub": "sad"}))
    labelled = box / "Happy+Human+Faces"
    labelled.mkdir()
    canvas.save(labelled / "a.png")
    (labelled / "manifest.jsonl").write_text('{"url": "http://example.invalid/a.png", "status": "ok"}\n')
    pictures = box / "pictures" / "Sad+Human+Faces"
    pictures.mkdir(parents=True)
    canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(pictures / "b.jpg")
    (pictures / "trunc.jpg").write_bytes((box / "face.jpg").read_bytes()[:300])
    mixed = box / "mixed"
    (mixed / "sub").mkdir(parents=True)
    canvas.resize((64, 56)).save(mixed / "small.png")
    (mixed / "readme.md").write_text("# hi\n")
    (mixed / "zero.jpg").write_bytes(b"")
    (mixed / "sub" / "t.png").write_bytes((box / "pic.png").read_bytes()[:120])
    os.symlink("../pic.png", mixed / "sub" / "link.png")
    (box / "emptydir").mkdir()
    os.symlink("pic.png", box / "link-pic.png")
    os.symlink("mixed", box / "link-dir")
    os.symlink("nowhere", box / "broken-link")
    os.symlink("loop", box / "loop")
    fill_store(box / "store", 6, t0=time.time() - 3600)
    Store(box / "store").close()
    (box / "m").mkdir()
    for suffix in (".tflite", ".json"):
        shutil.copy(REPO / "models" / f"default{suffix}", box / "m" / f"default{suffix}")
    (box / "run").mkdir()
    (box / "run" / "hparams.json").write_text('{"input_size": 48}')
    (box / "out").mkdir()
    (box / "readonly").mkdir()
    os.chmod(box / "readonly", 0o500)
    (box / "cwd").mkdir()
    return box


def store_rows(state: Path) -> list[tuple]:
    db = state / "moodcam.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT * FROM faces ORDER BY id").fetchall()
    crops = []
    for row in rows:
        crop = next((v for v in row if isinstance(v, str) and v.endswith((".png", ".jpg", ".webp"))), None)
        path = state / crop if crop else None
        crops.append(hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None)
    return [(*row, digest) for row, digest in zip(rows, crops)]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): its kind, size, mtime and mode."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st_ = path.lstat()
            # a folder changes when something is made in it: that shows as the new entry itself
            seen[str(path)] = (st_.st_mode,) if path.is_dir() and not path.is_symlink() else \
                (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return seen


def given_paths(argv: list[str], cwd: Path) -> list[Path]:
    """Every token that could name a path (also file:/dir: sources and --opt=value forms)."""
    found = []
    for token in argv:
        for part in (token, token.split("=", 1)[-1], token.split(":", 1)[-1]):
            if part:
                found.append(Path(os.path.normpath(cwd / part)))
    return found


def allowed(path: Path, given: list[Path]) -> bool:
    """Written under a given path, or beside it with its stem (OUT.manifest.csv, OUT-train.npz,
    temp files .OUT.tmp)."""
    for g in given:
        if path == g or g in path.parents:
            return True
        stem = g.name.split(".")[0]
        if path.parent == g.parent and stem and (path.name.startswith(stem) or path.name.startswith("." + g.name)):
            return True
        if path.parent.parent == g.parent and path.parent.name.startswith("." + g.name):   # .OUT.export-tmp/
            return True
    return False


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    crashed: str | None = None


def run_in_process(main, argv: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """main(argv) as a user's shell would run it, in this process: SystemExit is the exit code, an
    exception escaping main is the traceback a user would see."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_env = os.getcwd(), {k: os.environ.get(k) for k in env}
    os.chdir(cwd)
    os.environ.update(env)
    crashed = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            except Exception as exc:  # noqa: BLE001 - this is what the test looks for
                import traceback

                code, crashed = -1, "".join(traceback.format_exception(exc))
    finally:
        os.chdir(old_cwd)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Outcome(int(code or 0), out.getvalue(), err.getvalue(), crashed)


def problems(outcome: Outcome, argv: list[str], codes: set[int], sandbox: Path, before: dict, after: dict,
             rows_before: list, rows_after: list) -> list[str]:
    """What the example broke: a traceback, an undocumented exit code, a write outside the paths
    given, a logged face lost or changed."""
    found = []
    if outcome.crashed or "Traceback (most recent call last)" in outcome.stderr:
        found.append("traceback: " + (outcome.crashed or outcome.stderr)[-1500:])
    if outcome.code not in codes:
        found.append(f"exit code {outcome.code} is not one of {sorted(codes)}; stderr: {outcome.stderr[-300:]}")
    given = given_paths(argv[1:], sandbox / "cwd")
    changed = [p for p in set(before) | set(after) if before.get(p) != after.get(p)]
    stray = [p for p in changed if not allowed(Path(p), given)]
    if stray:
        found.append(f"written outside the paths given: {sorted(stray)[:5]}")
    if rows_after[:len(rows_before)] != rows_before:
        found.append(f"the store lost or changed faces: {len(rows_before)} before, {len(rows_after)} after")
    return found
