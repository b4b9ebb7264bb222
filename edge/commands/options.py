"""Options that several commands share, each defined once: the same flag, default and help everywhere.

``moodcam status``, ``export``, ``review`` and ``dataset`` read the log through ``--state DIR``;
``moodcam classify`` and ``moodcam-train evaluate`` look for faces in still pictures with the same
cascade settings, so a figure from ``evaluate`` is what ``classify`` does on the same pictures.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edge.store.layout import default_state_dir
from edge.vision.stills import STILL_MAX_SIDE, STILL_TTA_ZOOM, STILL_UPSAMPLE, mmod_available


def add_state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", type=Path, default=None, metavar="DIR",
                   help=f"the daemon's state directory (default: {default_state_dir()}; $MOODCAM_STATE_DIR "
                        "overrides it)")


def state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state).expanduser() if args.state else default_state_dir()


def add_still_options(p: argparse.ArgumentParser, *, tta_default: bool | None = True) -> None:
    """--upsample, --max-side, --tta/--no-tta and --tta-zoom; ``tta_default=None`` lets a config decide."""
    p.add_argument("--upsample", type=int, default=STILL_UPSAMPLE, metavar="N",
                   help=f"first dlib upsampling level of the still-picture cascade (default {STILL_UPSAMPLE}: "
                        "faces down to ~40 px; N+1 is tried when nothing is found; 0..3)")
    p.add_argument("--max-side", type=int, default=STILL_MAX_SIDE, metavar="PX",
                   help=f"pictures are shrunk to this longest side for detection (default {STILL_MAX_SIDE})")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=tta_default,
                   help="also classify each face mirrored and average the two (default: "
                        + ("classifier.tta of the config, on)" if tta_default is None else
                           f"{'on' if tta_default else 'off'})"))
    p.add_argument("--tta-zoom", type=float, default=STILL_TTA_ZOOM, metavar="Z",
                   help=f"also classify each face zoomed to 1-Z and 1+Z and average (default {STILL_TTA_ZOOM}; "
                        "0 = off; 0..0.3)")
    add_mmod_option(p)


def add_mmod_option(p: argparse.ArgumentParser) -> None:
    """--mmod/--no-mmod: the still cascade's last step, dlib's CNN face detector (classify, evaluate, ingest)."""
    p.add_argument("--mmod", action=argparse.BooleanOptionalAction, default=None,
                   help="when the HOG cascade finds no face, try dlib's CNN face detector (MMOD) last: finds "
                        "profiles and tilted or partly hidden faces, at seconds a picture (default: on where "
                        "its weights, the face-recognition-models package, are installed; the Pi has none)")


def use_mmod(args: argparse.Namespace) -> bool:
    """Whether the still cascade ends with MMOD; ValueError when --mmod is asked for without its weights."""
    if args.mmod is None:
        return mmod_available()
    if args.mmod and not mmod_available():
        raise ValueError("--mmod needs dlib's CNN face detector weights: pip install face-recognition-models "
                         "(in the train extra), or leave --mmod out")
    return bool(args.mmod)


def check_still_options(args: argparse.Namespace) -> None:
    """Raise ValueError naming the option when a still-picture option is out of range."""
    if not 0 <= args.upsample <= 3:
        raise ValueError(f"--upsample {args.upsample} is out of range; use 0..3")
    if args.max_side < 64:
        raise ValueError(f"--max-side {args.max_side} is too small; use at least 64")
    if not 0.0 <= args.tta_zoom <= 0.3:
        raise ValueError(f"--tta-zoom {args.tta_zoom} is out of range; use 0 (off) to 0.3")
