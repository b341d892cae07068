"""One skin tone from photos under different casts (docs/quality.md, "One skin tone from several photos").

Usage: .venv/bin/python bench/quality/tone_match.py [--texture 512]     # about a minute

The multi-photo jobs of the likeness bench (every dev-photo person with three or more photos, reconstructed from
up to three of them: even and odd photos) are made twice, with the photos' tones matched
(``likeness.appearance.albedo.match_tones``, the product) and without (each photo's cast and exposure left in its
albedo, as before). Reported per job:

- the photos' disagreement before matching: the ratio of the brightest to the darkest photo's skin albedo
  (luminance) and the largest difference in chromaticity (r/(r+g+b), b/(r+g+b)) between two photos;
- the patchiness of the baked skin albedo: over the skin texels of the face and head tiles, the standard deviation
  of the log-luminance and of the chromaticity after a 24-texel (at 512²) Gaussian blur, which keeps the large
  patches of a photo's tone and drops the skin's fine detail. Lower is more even.

Nothing is tuned here: ``match_tones`` has no setting chosen on these figures (its clip limits only guard against
absurd gains).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]
from likeness_bench import DEV, jobs  # noqa: E402
from photo_fits import FACE_LANDMARKER, model_path, write_results  # noqa: E402


def patchiness(bundle: Path, texture: int) -> dict[str, float]:
    """Low-frequency spread of the baked skin albedo (log-luminance, chromaticity) over the seen skin texels."""
    from likeness.appearance import light as sh
    from PIL import Image

    manifest = json.loads((bundle / "manifest.json").read_text())
    sigma = 24.0 * texture / 512.0
    lum, chroma = [], []
    for material in manifest["materials"]:
        files = material.get("textures") or {}
        if "base_color" not in files or material["name"] not in ("skin_face", "skin_head"):
            continue
        rgb = sh.SRGB8_TO_LINEAR[np.asarray(Image.open(bundle / files["base_color"]).convert("RGB"))]
        blurred = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigma)
        seen = rgb.sum(-1) > 0.01
        total = np.maximum(blurred.sum(-1), 1e-6)
        lum.append(np.log(np.maximum(blurred @ sh.LUMINANCE.astype(np.float32), 1e-4))[seen])
        chroma.append(np.stack([blurred[..., 0] / total, blurred[..., 2] / total], -1)[seen])
    lum_all, chroma_all = np.concatenate(lum), np.concatenate(chroma)
    return {"log_luminance_sd": float(lum_all.std()), "chromaticity_sd": float(np.linalg.norm(chroma_all.std(0)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texture", type=int, default=512)
    args = ap.parse_args()

    from likeness.appearance import light as sh
    from likeness.service import pipeline
    from likeness.service.pipeline import Engine, ReconstructRequest

    if FACE_LANDMARKER.is_file():  # as the likeness bench: the product set up with MediaPipe's blendshape model
        os.environ.setdefault("LIKENESS_MEDIAPIPE_TASK", str(FACE_LANDMARKER))
    items = json.loads((DEV / "manifest.json").read_text())["items"]
    engine = Engine()
    engine.use_encoder = False
    matched = pipeline.match_tones
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for job in [j for j in jobs(items) if j["kind"] == "multi"]:
            photos = [str(DEV / items[i]["file"]) for i in job["sources"]]
            row = {"photos": [items[i]["file"] for i in job["sources"]]}
            for mode in ("separate", "matched"):
                pipeline.match_tones = matched if mode == "matched" else (lambda delit: delit)
                out = Path(tmp) / f"{job['name']}_{mode}"
                try:
                    engine.reconstruct(ReconstructRequest(photos, str(out), args.texture, model_path()))
                finally:
                    pipeline.match_tones = matched
                manifest = json.loads((out / "manifest.json").read_text())
                albedo = np.array([p["light"]["skin_albedo"] for p in manifest["photos"]])
                if mode == "separate":
                    luminance = albedo @ sh.LUMINANCE
                    chromaticity = albedo[:, [0, 2]] / albedo.sum(1, keepdims=True)
                    row["exposure_ratio"] = float(luminance.max() / luminance.min())
                    row["chromaticity_difference"] = float(max(np.linalg.norm(a - b) for a in chromaticity
                                                               for b in chromaticity))
                row[mode] = patchiness(out, args.texture)
                shutil.rmtree(out)
            rows[job["name"]] = row
            print(f"{job['name']}: photos disagree by exposure ×{row['exposure_ratio']:.2f}, chromaticity "
                  f"{row['chromaticity_difference']:.3f}; patchiness log-luminance "
                  f"{row['separate']['log_luminance_sd']:.3f} → {row['matched']['log_luminance_sd']:.3f}, chromaticity "
                  f"{row['separate']['chromaticity_sd']:.4f} → {row['matched']['chromaticity_sd']:.4f}", flush=True)
    write_results("tone_match", {"jobs": rows}, {"texture": args.texture})


if __name__ == "__main__":
    main()
