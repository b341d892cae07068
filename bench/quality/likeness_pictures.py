"""README picture: the astronaut's head before and after the clean skin, frontal and turned 30°, with its hair cap.

Usage: .venv/bin/python bench/quality/likeness_pictures.py [--samples 32]
Reconstructs scikit-image's astronaut (public domain) twice, with every covered pixel baked into the skin (as
before) and with the clean skin (segmentation, hair mask and colour); renders both as the likeness bench does
(:mod:`likeness_render`: neutral expression, even light) and writes docs/images/astronaut_clean_skin.jpg.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "scripts"), str(Path(__file__).resolve().parent)]
from likeness_render import BundleRenderer  # noqa: E402  (bpy first)
from photo_fits import model_path  # noqa: E402

OUT = REPO / "docs" / "images" / "astronaut_clean_skin.jpg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args()
    from skimage import data

    from likeness.service.pipeline import Engine, ReconstructRequest

    work = Path(tempfile.mkdtemp(prefix="likeness-pictures-"))
    photo = work / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    engine = Engine()
    engine.use_encoder = False
    renderer = BundleRenderer(args.samples)
    tiles = []
    for label, clean in (("before: every covered pixel", False), ("after: clean skin + hair cap", True)):
        engine.use_segmentation = clean
        bundle = work / ("clean" if clean else "before")
        engine.reconstruct(ReconstructRequest(photos=[str(photo)], output=str(bundle), texture_size=1024,
                                              model=model_path(), name="astronaut"))
        centre = renderer.load(bundle)
        for yaw in (0.0, 30.0):
            path = work / f"{bundle.name}_{int(yaw)}.png"
            renderer.render(centre, yaw, path)
            tile = Image.open(path).convert("RGB")
            ImageDraw.Draw(tile).text((8, 8), f"{label}, {int(yaw)}°", fill=(20, 20, 20))
            tiles.append(tile)
    w, h = tiles[0].size
    sheet = Image.new("RGB", (2 * w, 2 * h))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % 2) * w, (i // 2) * h))
    sheet.save(OUT, quality=88)
    print(OUT, f"{OUT.stat().st_size / 1024:.0f} KiB", np.asarray(sheet).shape)


if __name__ == "__main__":
    main()
