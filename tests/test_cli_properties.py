"""Property tests of both programs' command lines: any argv drawn from a command's own options,
over awkward files, gives a one-line answer, never a traceback; an exit code from the documented
set; writes only where the command line points; and loses or changes nothing in a store.

Each example runs ``main(argv)`` in this process (a subprocess per example would cost seconds);
a few examples per program run the real entry point (``python -m edge``/``-m trainer``) too.
Left out: commands that need a camera or run until stopped (``moodcam review``; ``run`` always
gets ``--max-frames`` and a file:, dir: or demo source), the network (``scrape``) or TensorFlow
training (``fit``, ``export``). The figures (examples per command, exit codes) are printed
at the end of each test (``pytest -s``) and written to $MOODCAM_FUZZ_COUNTS if set.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from edge.cli import COMMANDS as EDGE_COMMANDS
from edge.cli import main as edge_main
from tests.cli_fuzz import REPO, Counts, argv_strategy, make_template, problems, run_in_process, snapshot, store_rows
from trainer.cli import COMMANDS as TRAINER_COMMANDS
from trainer.cli import main as trainer_main

EDGE_CODES = {0, 1, 2, 3, 4, 5, 6}        # edge/cliutil.py; docs/cli.md
TRAINER_CODES = {0, 1, 2, 3}
EDGE_FUZZED = ["classify", "check-config", "export", "status", "dataset", "run", "model"]
TRAINER_FUZZED = ["ingest", "split-pictures", "import-fer2013", "evaluate"]
SETTINGS = settings(max_examples=int(os.environ.get("MOODCAM_FUZZ_EXAMPLES", "25")), deadline=None,
                    derandomize=True, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_template(tmp_path_factory.mktemp("fuzz"))


def _example(main, codes, template, argv, counts: Counts, name: str):
    work = template.parent.parent / f"run-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    sandbox = work / "sandbox"
    shutil.copytree(template, sandbox, symlinks=True)
    (work / "outside").mkdir()
    argv = [token.replace("@/", f"{sandbox}/") for token in argv]
    env = {"MOODCAM_STATE_DIR": str(sandbox / "default-state"), "TQDM_DISABLE": "1", "NO_COLOR": "1"}
    rows_before, before = store_rows(sandbox / "store"), snapshot(work)
    t0 = time.perf_counter()
    outcome = run_in_process(main, argv, sandbox / "cwd", env)
    counts.seconds[name] = round(counts.seconds.get(name, 0.0) + time.perf_counter() - t0, 1)
    found = problems(outcome, argv, codes, sandbox, before, snapshot(work), rows_before, store_rows(sandbox / "store"))
    counts.add(name, outcome.code, outcome.stderr)
    assert not found, f"{argv}:\n" + "\n".join(found)


def _report(program: str, counts: Counts) -> None:
    figures = {"program": program, "tried": counts.tried, "codes": counts.codes, "answers": counts.answers,
               "seconds": counts.seconds}
    print("\n" + json.dumps(figures))
    if os.environ.get("MOODCAM_FUZZ_COUNTS"):
        with open(os.environ["MOODCAM_FUZZ_COUNTS"], "a") as f:
            f.write(json.dumps(figures) + "\n")


def _fuzz(program: str, main, commands, fuzzed: list[str], codes: set[int], template) -> Counts:
    counts = Counts()
    for name in fuzzed:     # one bounded run per command: every command gets the same number of examples
        @SETTINGS
        @given(argv_strategy(program, commands, name))
        def check(drawn):
            _example(main, codes, template, drawn[1], counts, drawn[0])

        check()
    _report(program, counts)
    return counts


@pytest.mark.slow  # about 25 s here: 150 command lines, a few of them runs of the daemon
def test_edge_command_lines(template, monkeypatch):
    monkeypatch.delenv("MOODCAM_MODEL", raising=False)
    counts = _fuzz("moodcam", edge_main, EDGE_COMMANDS, EDGE_FUZZED, EDGE_CODES, template)
    assert set(counts.tried) == set(EDGE_FUZZED)


@pytest.mark.slow  # about 20 s here: 100 command lines, some ingests with dlib
def test_trainer_command_lines(template):
    counts = _fuzz("moodcam-train", trainer_main, TRAINER_COMMANDS, TRAINER_FUZZED, TRAINER_CODES, template)
    assert set(counts.tried) == set(TRAINER_FUZZED)


@pytest.mark.parametrize("module,argv,codes", [
    ("edge", ["classify", "@/emptydir", "--model", "@/m/default.tflite"], EDGE_CODES),
    ("edge", ["export", "--state", "@/store", "--out", "@/missing/x.jsonl"], EDGE_CODES),
    ("edge", ["status", "--state", "@/emptydir", "--json"], EDGE_CODES),
    ("trainer", ["ingest", "@/emptydir", "--out", "@/out/x.npz"], TRAINER_CODES),
    ("trainer", ["import-fer2013", "@/notes.txt", "--out", "@/new.npz"], TRAINER_CODES),
])
def test_real_entry_points(template, tmp_path, module, argv, codes):
    """The same checks through ``python -m``: the entry point adds nothing that breaks them."""
    sandbox = tmp_path / "sandbox"
    shutil.copytree(template, sandbox, symlinks=True)
    argv = [token.replace("@/", f"{sandbox}/") for token in argv]
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=sandbox / "cwd",
                          env={**os.environ, "PYTHONPATH": str(REPO), "MOODCAM_STATE_DIR": str(sandbox / "default-state")},
                          timeout=300, check=False)
    assert proc.returncode in codes and proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") <= 2, proc.stderr
    assert ": error: " in proc.stderr
    after = snapshot(tmp_path)
    assert {p for p in set(before) | set(after) if before.get(p) != after.get(p)} == set()
    assert Path(sandbox / "store" / "moodcam.db").exists()
