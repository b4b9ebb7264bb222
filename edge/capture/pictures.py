"""Decode any picture Pillow reads into an RGB array, or say in words why it is not one.

Web image search leaves every format behind: JPEG (with EXIF rotation), PNG with alpha, palette
GIFs (animated), BMP, WebP, MPO (multi-picture JPEG from cameras), CMYK JPEG, 16-bit PNG, and
HTML error pages saved under a picture's name. The scraper (to check a download), ingest (to
find faces), evaluate, and the edge's ``classify`` and ``dir:`` source all go through
:func:`decode_picture`, so they agree on what a picture is and how it looks.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A web picture above this many pixels is a poster or a decompression bomb, not a face photo.
MAX_PIXELS = 64_000_000
MIN_SIDE = 16


class NotAPicture(ValueError):
    """The file is not a usable picture; ``str(exc)`` is the reason, written to rejects reports."""


def _sniff(head: bytes) -> str:
    """A few words on what a non-picture file looks like, for the rejects report."""
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in text[:512]:
        return "an HTML/XML page"
    if text.startswith((b"{", b"[")):
        return "JSON/text"
    if not head:
        return "an empty file"
    return "unrecognised data"


def open_picture(source) -> Image.Image:
    """The first frame of a picture, upright (EXIF rotation applied), as RGB.

    ``source`` is a path or a binary file object. Raises :class:`NotAPicture` with a reason.
    """
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "<bytes>")
    try:
        with warnings.catch_warnings():
            # Pillow warns (DecompressionBombWarning) between 1x and 2x its limit; we check size ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
            try:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise NotAPicture(f"too large: {w}x{h} pixels (limit {MAX_PIXELS:,})")
                if min(w, h) < MIN_SIDE:
                    raise NotAPicture(f"too small: {w}x{h} pixels (minimum side {MIN_SIDE})")
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)  # GIF/MPO/WebP animations: the first frame is the picture
                im.load()
                fmt = im.format
                im = ImageOps.exif_transpose(im)  # camera photos stored sideways
                rgb = _to_rgb(im)
                rgb.info["source_format"] = fmt
                return rgb
            finally:
                im.close()
    except NotAPicture:
        raise
    except UnidentifiedImageError:
        head = b""
        try:
            if isinstance(source, (str, Path)):
                with open(source, "rb") as f:
                    head = f.read(1024)
            else:
                source.seek(0)
                head = source.read(1024)
        except OSError:
            pass
        raise NotAPicture(f"not a picture: {_sniff(head)} that Pillow cannot identify") from None
    except Image.DecompressionBombError as exc:
        raise NotAPicture(f"too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated downloads and corrupt streams: Pillow raises OSError("image file is truncated ...").
        raise NotAPicture(f"corrupt picture ({type(exc).__name__}: {exc}) in {name}") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB, with transparent areas over white (as the picture shows in a browser)."""
    if im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit gray: scale to 8 bits instead of clipping everything to white.
        arr = np.asarray(im, dtype=np.float64)
        top = arr.max() or 1.0
        im = Image.fromarray((arr * (255.0 / top)).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")  # also CMYK, YCbCr, L, 1, F


def decode_picture(source) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array of the first frame, upright. Raises :class:`NotAPicture`."""
    return np.asarray(open_picture(source), dtype=np.uint8)

