"""Skin albedo from a reconstructed photo, per vertex of the head model, for training renders (data version 5).

The procedural skins (:mod:`likeness.learned.skins`) paint brows, lashes, lips and skin from rules; a photo's
albedo has what rules miss (real brows and lashes, lip lines, pores, the shading a delighting leaves). The product
makes such an albedo itself: :func:`photo_bundle` reconstructs the public-domain astronaut portrait that ships with
scikit-image (``python -m likeness demo``, without the expression encoder, so the data does not depend on any
checkpoint), and :func:`vertex_albedo` samples the bundle's albedo textures at every vertex's UV. No benchmark uses
this photo or its bundle; the Cycles benchmark's skin is a reconstruction of a dev photo (docs/encoder.md, "Kept
apart"). :meth:`likeness.learned.skins.SkinPainter.paint` then re-tones it per skin (``photo=``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ..appearance.light import srgb_to_linear

#: Where :func:`photo_bundle` puts the astronaut's bundle inside the training-data folder.
PHOTO_BUNDLE = "skin_astronaut"
#: Vertices whose hair-mask value is above this keep the painted skin.
HAIR = 0.1


def texture_albedo(faces: np.ndarray, faces_uv: np.ndarray, uv: np.ndarray, face_material: np.ndarray,
                   textures: dict[int, np.ndarray], vertex_count: int, srgb: bool = True) -> np.ndarray:
    """Linear-RGB albedo (V,3) of each vertex: the mean over its polygon corners of the corner's material texture
    (sRGB uint8 (H,W,3), row 0 at v = 1; any size per material) sampled bilinearly at the corner's UV; NaN where no
    corner lies on a textured material. ``faces``/``faces_uv`` (F,4) with -1 padding for triangles, ``uv`` (T,2)
    in [0, 1]. ``srgb`` False: the textures are data (a mask), read as value / 255."""
    total = np.zeros((vertex_count, 3))
    count = np.zeros(vertex_count)
    for material, image in textures.items():
        rows = face_material == material
        corners, coords = faces[rows].ravel(), faces_uv[rows].ravel()
        keep = (corners >= 0) & (coords >= 0)
        corners, coords = corners[keep], uv[coords[keep]]
        size = np.array(image.shape[1::-1], np.float64)  # (width, height)
        x = np.clip(coords[:, 0] * size[0] - 0.5, 0, size[0] - 1)
        y = np.clip((1.0 - coords[:, 1]) * size[1] - 0.5, 0, size[1] - 1)
        x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
        x1, y1 = np.minimum(x0 + 1, int(size[0]) - 1), np.minimum(y0 + 1, int(size[1]) - 1)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        lin = image.astype(np.float64) / 255.0
        lin = srgb_to_linear(lin) if srgb else lin
        sample = ((lin[y0, x0] * (1 - fx) + lin[y0, x1] * fx) * (1 - fy)
                  + (lin[y1, x0] * (1 - fx) + lin[y1, x1] * fx) * fy)
        np.add.at(total, corners, sample)
        count += np.bincount(corners, minlength=vertex_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count[:, None]


def vertex_albedo(bundle: str | Path, vertex_count: int) -> np.ndarray:
    """A bundle's albedo (V,3 linear RGB) per vertex of the head model it was made with, which must have
    ``vertex_count`` vertices (the bundle's mesh is the model's topology); NaN where untextured and where the
    bundle's hair mask says hair (a fringe or hairline baked into the face's albedo would read as a painted band)."""
    from ..appearance.relight import bundle_head, bundle_textures
    from ..errors import BadInput

    head, manifest, textures = bundle_head(bundle)
    if head.vertex_count != vertex_count:
        raise BadInput(f"The bundle {bundle} has {head.vertex_count} vertices, the head model {vertex_count}.",
                       "Reconstruct it with the same head model.")
    mesh = (head.faces, head.faces_uv, head.uv, head.face_material)
    albedo = texture_albedo(*mesh, textures, vertex_count)
    masks = bundle_textures(bundle, manifest, "hair_mask")
    if masks:
        hair = texture_albedo(*mesh, masks, vertex_count, srgb=False)[:, 0]
        albedo[hair > HAIR] = np.nan
    return albedo


def photo_bundle(folder: Path, model_path: str) -> Path:
    """The astronaut's bundle in ``folder`` (made once by ``python -m likeness demo`` in a subprocess, about 10 s
    on 2 cores, then reused)."""
    bundle = Path(folder) / PHOTO_BUNDLE
    if not (bundle / "manifest.json").is_file():
        Path(folder).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "likeness", "demo", "--output", str(bundle), "--model", model_path,
                   "--no-encoder", "--texture-size", "1024"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"Could not reconstruct the astronaut for the photo skins ({' '.join(command)}):\n"
                             f"{done.stderr.strip()[-2000:]}")
    return bundle
