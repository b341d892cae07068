"""The encoder's training set as one compact file, to train on another machine (a lent GPU) without the
render cache: ``python -m likeness.learned.pack`` then ``python -m likeness.learned.train --packed FILE``.

The cache (:mod:`likeness.learned.dataset`) holds about 0.8 GB of face crops and float64 landmarks; the pack
holds what training reads, about 50 MB:

- the landmark features (:func:`likeness.learned.features.encoder_features`, 478 × 3 numbers a face) standardised
  and stored as their first :data:`COMPONENTS` principal components (float16); decoded, they are within about
  1e-4 inter-ocular distances of the originals (rms), 30 times under the jitter training adds;
- the rotation and score features as they are (float16);
- the face crops as WebP at quality :data:`WEBP_QUALITY` (the renders already carry JPEG and sensor noise);
- the truth (expression weights, angles), the two templates and the expression names.

NumPy's ``.npz`` without pickles: strings are stored as JSON in unicode arrays.
"""

from __future__ import annotations

import argparse
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import VERSIONS
from .features import SHAPE_COLS

COMPONENTS = 384
WEBP_QUALITY = 90
POINTS = SHAPE_COLS.stop  # the landmark part of a feature vector (features.SHAPE_COLS)


def encode_crops(crops: np.ndarray, quality: int = WEBP_QUALITY) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 → all WebP files concatenated (uint8) and the (N + 1,) offsets between them."""
    def one(im: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "WEBP", quality=quality, method=4)
        return buf.getvalue()

    with ThreadPoolExecutor() as pool:
        files = list(pool.map(one, crops))
    offsets = np.zeros(len(files) + 1, np.int64)
    offsets[1:] = np.cumsum([len(f) for f in files])
    return np.frombuffer(b"".join(files), np.uint8), offsets


def decode_crops(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The inverse of :func:`encode_crops`: (N, S, S, 3) uint8."""
    raw = blob.tobytes()

    def one(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(raw[offsets[i]:offsets[i + 1]])) as im:
            return np.asarray(im.convert("RGB"))

    with ThreadPoolExecutor() as pool:
        return np.stack(list(pool.map(one, range(len(offsets) - 1))))


def pack(features: np.ndarray, crops: np.ndarray, expression: np.ndarray, angles: np.ndarray,
         template: np.ndarray, crop_template: np.ndarray, names: tuple[str, ...], out: Path,
         meta: dict, components: int = COMPONENTS) -> Path:
    """Write the pack (see the module's docstring); ``features`` (N, FEATURES) as the trainer makes them."""
    points = features[:, :POINTS].astype(np.float64)
    mean, scale = points.mean(0), np.maximum(points.std(0), 1e-6)
    standard = (points - mean) / scale
    basis = np.linalg.svd(standard, full_matrices=False)[2][:components]  # (K, POINTS), orthonormal rows
    blob, offsets = encode_crops(crops)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, codes=(standard @ basis.T).astype(np.float16), basis=basis.astype(np.float32),
                 points_mean=mean.astype(np.float32), points_scale=scale.astype(np.float32),
                 rest=features[:, POINTS:].astype(np.float16), expression=expression.astype(np.float16),
                 angles=angles.astype(np.float32), template=template.astype(np.float64),
                 crop_template=crop_template.astype(np.float64), crops=blob, offsets=offsets,
                 names=np.array(json.dumps(list(names))), meta=np.array(json.dumps(meta)))
    tmp.replace(out)
    return out


def unpack(path: Path) -> dict:
    """The pack's arrays decoded: ``features`` (N, FEATURES) float32, ``crops`` (N, S, S, 3) uint8,
    ``expression`` (N, E) and ``angles`` (N, 3) float32, ``template``, ``crop_template``, ``names``, ``meta``."""
    with np.load(path, allow_pickle=False) as f:
        d = {k: f[k] for k in f.files}
    points = (d["codes"].astype(np.float32) @ d["basis"]) * d["points_scale"] + d["points_mean"]
    return {"features": np.concatenate([points, d["rest"].astype(np.float32)], 1).astype(np.float32),
            "crops": decode_crops(d["crops"], d["offsets"]),
            "expression": d["expression"].astype(np.float32), "angles": d["angles"].astype(np.float32),
            "template": d["template"], "crop_template": d["crop_template"],
            "names": tuple(json.loads(str(d["names"]))), "meta": json.loads(str(d["meta"]))}


def main(argv: list[str] | None = None) -> None:
    from .trainset import SKINS, prepare

    parser = argparse.ArgumentParser(description="Pack the encoder's training data into one file "
                                     "(docs/encoder.md, 'Training on a GPU').")
    parser.add_argument("--data", type=Path, default=Path("out/encoder_data"), help="training-data cache folder")
    parser.add_argument("--shards", type=int, default=64, help="training shards (made first where missing)")
    parser.add_argument("--data-version", type=int, choices=VERSIONS, default=2, help="which training renders")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering missing shards")
    parser.add_argument("--model", help="ICT model (.npz or folder); default as for `likeness reconstruct`")
    parser.add_argument("--out", type=Path, default=Path("out/pack/train.npz"))
    args = parser.parse_args(argv)
    data = prepare(args.data, args.shards, args.workers, args.model, args.data_version)
    meta = dict(data["meta"], skins=SKINS, packed_components=COMPONENTS, packed_webp_quality=WEBP_QUALITY)
    pack(data["features"], data["crops"], data["expression"], data["angles"], data["template"],
         data["crop_template"], data["names"], args.out, meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB, {len(data['features'])} faces)")


if __name__ == "__main__":
    main()
