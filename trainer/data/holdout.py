"""Hold out part of a labelled picture tree for testing, with no near copy on both sides.

Scraped pictures come with duplicates: the same photo resized, recompressed or saved twice
("ActiOn_1.jpg" and "ActiOn_1 (2).jpg"). A split by file would put one copy in training and the
other in the test, and the test would flatter the model. So pictures are first grouped by
perceptual hash (pHash within ``near_bits`` bits, transitively), and each whole group goes to one
side, decided by a hash of its first file's relative path: the split is the same on every
machine and every run, and adding pictures later moves no existing group.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.argpaths import private_file
from edge.capture.pictures import NotAPicture, open_picture
from trainer.data.download import phash_distances

SIDES = ("train", "heldout")


@dataclass(frozen=True)
class Split:
    counts: dict[str, int]         # pictures per side
    groups: int                    # near-duplicate groups
    unreadable: int                # files that are not pictures (kept, each a group of its own)
    listing: Path                  # split.csv: file, group, side


def picture_hashes(files: list[Path]) -> list[int | None]:
    """64-bit pHash of each picture as the trainer decodes it; None for a file that is not one."""
    import imagehash

    hashes: list[int | None] = []
    for path in files:
        try:
            hashes.append(int(str(imagehash.phash(open_picture(path))), 16))
        except (NotAPicture, OSError):
            hashes.append(None)
    return hashes


def near_duplicate_groups(hashes: list[int | None], near_bits: int) -> list[int]:
    """A group id per picture: pictures within ``near_bits`` of each other (transitively) share one."""
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    known = [i for i, h in enumerate(hashes) if h is not None]
    table = np.array([hashes[i] for i in known], dtype=np.uint64)
    for pos, i in enumerate(known[:-1]):
        for j in np.flatnonzero(phash_distances(table[pos + 1 :], hashes[i]) <= near_bits):
            parent[root(known[pos + 1 + int(j)])] = root(i)
    return [root(i) for i in range(len(hashes))]


def side_of(key: str, heldout_fraction: float, salt: str = "") -> str:
    """``heldout`` for about ``heldout_fraction`` of keys, by a stable hash of the key.

    ``salt`` makes an independent split: the same paths hash alike, so splitting one side of an
    unsalted split again (a validation part of the training half) would put every group on the
    same side as before; salted, the buckets are drawn afresh. No salt keeps the original split."""
    keyed = f"{salt}\0{key}" if salt else key
    bucket = int(hashlib.sha1(keyed.encode()).hexdigest(), 16) % 10_000
    return "heldout" if bucket < round(heldout_fraction * 10_000) else "train"


def split_pictures(root: Path, out: Path, *, heldout_fraction: float = 0.5, near_bits: int = 8,
                   copy: bool = False, salt: str = "") -> Split:
    """Write ``out/train/<folder>/<file>`` and ``out/heldout/<folder>/<file>`` (symlinks to the
    originals, or copies) and ``out/split.csv``. ``root`` holds one folder per label."""
    root, out = Path(root).resolve(), Path(out)
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"--heldout is {heldout_fraction}; give a fraction between 0 and 1, e.g. 0.5")
    if not root.is_dir():
        raise FileNotFoundError(f"picture folder {root} does not exist")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new --out (a split is never mixed with an older one)")
    files = sorted(p for p in root.glob("*/*") if p.is_file())
    if not files:
        raise ValueError(f"{root}: no pictures in sub-folders (expected <label folder>/<picture>)")
    hashes = picture_hashes(files)
    group_of = near_duplicate_groups(hashes, near_bits)
    first: dict[int, str] = {}
    for path, group in zip(files, group_of):  # files are sorted: the first seen is the smallest path
        first.setdefault(group, str(path.relative_to(root)))
    counts = dict.fromkeys(SIDES, 0)
    out.mkdir(parents=True, exist_ok=True)
    listing = out / "split.csv"
    with open(listing, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "group", "side"])
        for path, group in zip(files, group_of):
            side = side_of(first[group], heldout_fraction, salt)
            rel = path.relative_to(root)
            target = out / side / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if copy:   # pictures of faces: the copy is readable by its owner only
                with open(path, "rb") as src, private_file(target) as dst:
                    shutil.copyfileobj(src, dst)
            else:
                os.symlink(path, target)
            counts[side] += 1
            writer.writerow([str(rel), first[group], side])
    return Split(counts, len(first), sum(h is None for h in hashes), listing)
