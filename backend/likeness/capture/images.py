"""Reading photos: upright RGB pixels and the camera focal length in pixels."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadInput

#: Photos larger than this (long side, pixels) are downscaled on load to bound memory and time.
MAX_SIDE = 4096
#: Focal length assumed without EXIF (mm, full-frame equivalent) unless the job names one (``lens_mm``). A photo
#: without EXIF does not say how far the camera was, and the fit's identity absorbs a wrong guess: a longer lens
#: suits portraits taken from 1–3 m, a shorter one webcams, video and close-ups (docs/quality.md section 7).
DEFAULT_FOCAL_MM = 50.0
#: The same as a multiple of the photo's long side (a 36 mm-wide full frame).
DEFAULT_FOCAL_FACTOR = DEFAULT_FOCAL_MM / 36.0
#: Lenses (mm, full-frame equivalent) taken as real, from EXIF or from the job's ``lens_mm``; the same bounds.
LENS_RANGE_MM = (8.0, 1200.0)


def check_lens(lens_mm: float | None) -> None:
    """Refuse a lens (mm, full-frame equivalent) outside :data:`LENS_RANGE_MM` with a clear message (None passes)."""
    low, high = LENS_RANGE_MM
    if lens_mm is not None and not (low <= float(lens_mm) <= high):  # NaN fails too
        raise BadInput(f"A {float(lens_mm):g} mm lens is out of range.",
                       f"Give the lens as a full-frame equivalent from {low:g} to {high:g} mm (a phone's main "
                       "camera is about 26 mm, a portrait lens 85 mm), or leave it out.")
_EXIF_IFD = 0x8769
_FOCAL_35MM = 0xA405


@dataclass(frozen=True)
class Photo:
    """An upright photo. ``focal_px`` is in pixels of ``rgb``; the principal point is the image centre."""

    path: Path
    rgb: np.ndarray  # (H,W,3) uint8
    focal_px: float
    focal_source: str  # "exif", "lens" (the lens the job named) or "default"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def principal_point(self) -> tuple[float, float]:
        w, h = self.size
        return w / 2.0, h / 2.0


def load_photo(path: str | Path, lens_mm: float | None = None) -> Photo:
    """Load a photo upright (EXIF orientation applied), as 8-bit RGB, downscaled to :data:`MAX_SIDE`.

    Its focal length comes from EXIF, else from ``lens_mm`` (mm, full-frame equivalent) where given, else from
    :data:`DEFAULT_FOCAL_MM` (:func:`focal_from_exif`).

    Large JPEGs are decoded at a reduced scale (``draft``) so a 100-megapixel photo costs about a quarter of its
    full-size memory; images over Pillow's decompression-bomb limit (about 179 megapixels) are refused before
    anything is decoded. 16-bit greyscale is scaled to 8 bits, not clipped.
    """
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path} is a folder, not a photo.", "Pick the photo files inside it.")
    if not path.is_file():
        raise BadInput(f"The photo {path} does not exist.", "Check the path and try again.")
    if path.stat().st_size == 0:
        raise BadInput(f"{path.name} is empty (0 bytes).", "Copy the photo again; the file holds no image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # big photos are downscaled below
            with Image.open(path) as img:
                if max(img.size) > MAX_SIDE:
                    img.draft(None, (MAX_SIDE, MAX_SIDE))
                img.load()
                exif = img.getexif()
                img = ImageOps.exif_transpose(img)
                img = _to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{path.name} is too large to read safely ({exc}).",
                       "Save a smaller copy of the photo (a few thousand pixels on the long side is plenty).") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"{path.name} is not an image that can be read ({exc}).",
                       "Use a JPEG or PNG photo.") from exc
    scale = min(1.0, MAX_SIDE / max(img.size))
    if scale < 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    rgb = np.asarray(img, dtype=np.uint8)
    focal, source = focal_from_exif(exif, max(img.size), lens_mm)
    return Photo(path=path.resolve(), rgb=rgb, focal_px=focal, focal_source=source)


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB; 16-bit greyscale (Pillow's ``I;16`` or ``I``) keeps its 8 most significant bits."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
        img = Image.fromarray((wide >> 8).astype(np.uint8), "L")
    return img.convert("RGB") if img.mode != "RGB" else img


def focal_from_exif(exif: Image.Exif, long_side: int, lens_mm: float | None = None) -> tuple[float, str]:
    """Focal length in pixels from EXIF ``FocalLengthIn35mmFilm``, else from ``lens_mm`` (the lens the user
    named, mm full-frame equivalent), else the documented default; and where it came from."""
    try:
        f35 = float(exif.get_ifd(_EXIF_IFD).get(_FOCAL_35MM) or 0)
    except (TypeError, ValueError, KeyError):
        f35 = 0.0
    if LENS_RANGE_MM[0] <= f35 <= LENS_RANGE_MM[1]:
        return f35 / 36.0 * long_side, "exif"
    if lens_mm:
        return float(lens_mm) / 36.0 * long_side, "lens"
    return DEFAULT_FOCAL_FACTOR * long_side, "default"
