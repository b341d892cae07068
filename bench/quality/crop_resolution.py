"""Does the expression encoder need more pixels? Train it on face crops of less resolution and compare (issue 11).

Usage: .venv/bin/python bench/quality/crop_resolution.py BASELINE_CHECKPOINT [--factor 0.5] [--data-version N]
           [--epochs E] [--mirror M] [--randconv R] [--channels C]

Trains the encoder exactly as ``python -m likeness.learned.train`` does with the same options (same render cache,
seed, held-out faces), except that every face crop, in training and in validation, is first shrunk by ``--factor``
(antialiased) and enlarged back to its stored size: the crop then holds the detail of a crop taken at
``factor`` × :data:`likeness.learned.features.CROP_SCALE` pixels per inter-ocular distance. Both networks are then
read on the faces training held out (``BASELINE_CHECKPOINT``, trained with the same options at full resolution, on
its full-resolution crops), with the benchmark's figures and the AUC of the shapes that the network reads worst.

If half the pixels cost little, the subtle shapes are not limited by the crop's resolution and larger eye and mouth
crops would not help; if they cost much, more pixels are the next thing to try. The faces are training's own kind of
renders, so this measures the network, not the product: nothing here is a benchmark, and nothing is shipped from it.
Needs the ICT model ($LIKENESS_ICT_MODEL) and the render cache (made by the training command first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]

import synth_metrics as metrics  # noqa: E402

from likeness.learned import train as training  # noqa: E402
from likeness.learned.dataset import SHARD, VERSIONS  # noqa: E402
from likeness.learned.mirror import Mirror  # noqa: E402
from likeness.learned.runtime import ExpressionEncoder, read_faces  # noqa: E402
from likeness.learned.trainset import prepare  # noqa: E402

#: Shapes the long runs read worst on their own renders (docs/encoder.md): listed whatever the outcome.
SUBTLE = ("cheekSquint_L", "cheekSquint_R", "mouthPress_L", "mouthPress_R", "jawLeft", "jawRight",
          "eyeWide_L", "eyeWide_R", "browDown_L", "browDown_R")


def reduce_resolution(crops: np.ndarray, factor: float, chunk: int = 1000) -> np.ndarray:
    """(N, S, S, 3) uint8 crops shrunk to ``factor`` of their side (antialiased bilinear) and enlarged back."""
    import torch
    from torch.nn.functional import interpolate

    size = crops.shape[1]
    small = max(int(round(size * factor)), 1)
    out = np.empty_like(crops)
    for start in range(0, len(crops), chunk):
        x = torch.from_numpy(crops[start:start + chunk]).permute(0, 3, 1, 2).float()
        x = interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        x = interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out[start:start + chunk] = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


def report(label: str, names, truth: np.ndarray, weights: np.ndarray) -> None:
    result = metrics.expression_metrics(names, truth, weights)
    on = truth > 0
    subtle = "  ".join(f"{n} {result['per_shape'][n]['auc']:.2f}" for n in SUBTLE if n in result["per_shape"])
    print(f"{label}: on-shape error {result['on_shape_error']:.3f}, leak {result['leaked_mean']:.2f}, AUC "
          f"{result['auc_mean']:.3f}, side {result['side_accuracy']:.0%} of {result['side_cases']}, read where on "
          f"{weights[on].mean():.2f} (true {truth[on].mean():.2f})\n    AUC: {subtle}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="the same recipe trained at full resolution")
    parser.add_argument("--factor", type=float, default=0.5, help="share of the crop's side kept (0 < f < 1)")
    parser.add_argument("--data", type=Path, default=Path("out/encoder_data"))
    parser.add_argument("--data-version", type=int, choices=VERSIONS, default=1)
    parser.add_argument("--shards", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--channels", type=float, default=1.0)
    parser.add_argument("--mirror", type=float, default=training.MIRROR)
    parser.add_argument("--randconv", type=float, default=training.RANDCONV)
    args = parser.parse_args()
    if not 0.0 < args.factor < 1.0:
        raise SystemExit("--factor must lie between 0 and 1")
    data = prepare(args.data, args.shards, 2, None, args.data_version)
    x, crops, y, angles = data["features"], data["crops"], data["expression"], data["angles"]
    held = len(x) - min(SHARD, len(x) // 10)
    small = reduce_resolution(crops, args.factor)
    mirror = Mirror(data["template"], data["names"])
    net = training.train(x[:held], small[:held], y[:held], angles[:held], args.epochs, training.TRAIN_SEED, 384, 3,
                         args.channels, val=(x[held:], small[held:], y[held:]), mirror=mirror,
                         mirror_fraction=args.mirror, randconv=args.randconv)
    names, truth = data["names"], y[held:].astype(np.float64)
    baseline = ExpressionEncoder(args.baseline, names, "cpu")
    full, _ = baseline.predict(x[held:], crops[held:])
    print(f"{len(truth)} held-out faces of data version {args.data_version}; {args.epochs} epochs, mirror "
          f"{args.mirror}, randconv {args.randconv}, channels {args.channels}")
    report(f"full resolution ({args.baseline.name})", names, truth, np.asarray(full, np.float64))
    small_read, _ = read_faces(net, x[held:], small[held:], mirror)  # read as the product reads (with the mirror)
    report(f"crops at {args.factor:g} of the resolution", names, truth, small_read)


if __name__ == "__main__":
    main()
