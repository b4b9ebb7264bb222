"""The one helper that finds ``../shared/data`` for tests and benchmarks, and the one rule for
what a test lacks: where data or a tool is missing, tests skip with a clear reason; under
``CI=true`` (which installs everything) it is an error, never a silent skip.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path | None:
    """``$MOODCAM_SHARED_DATA``, else ``../shared/data`` beside the repository (or its main checkout)."""
    env = os.environ.get("MOODCAM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), None)


def shared_data(*parts: str) -> Path:
    """Path to ``shared/data/<parts>``; skips the test (fails under CI=true) when it is missing."""
    root = data_root()
    path = root.joinpath(*parts) if root else None
    if path is not None and path.exists():
        return path
    unavailable(f"shared data {'/'.join(parts) or '.'} not found (looked for ../shared/data; set MOODCAM_SHARED_DATA)")


def unavailable(reason: str):
    """Skip the test for ``reason``; under CI=true raise instead, since CI installs what tests need."""
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(reason + " -- under CI=true this is an error")
    import pytest

    pytest.skip(reason)
