"""What an encoder checkpoint reads on its own kind of renders: the faces training held out (issue 11).

Usage: .venv/bin/python bench/quality/encoder_validation.py CHECKPOINT [--data-version N] [--shapes K] [--shard I]
           [--withheld] [--no-mirror]

``likeness.learned.train`` keeps the last faces of its render cache aside (the last shard's, 250) and never trains on
them. This reads that shard (``out/encoder_data/train[_vN]_0059.npz``; the data version the checkpoint was trained
on) with the checkpoint alone, no fit, and prints the benchmark's expression figures (``synth_metrics``), how much
it under-reads (mean weight read where a shape is on, against the truth), and the shapes that carry most of the
on-shape error, each with how many of the crop's pixels it moves the face at full weight (:func:`crop_pixels`).
Its faces are training's scenes and skins, so this is the network's ceiling on renders, not a benchmark: the
benchmarks are ``synthetic.py`` and ``heldout.py``. Needs the ICT model ($LIKENESS_ICT_MODEL).

``--shard I`` reads another shard instead, e.g. one the checkpoint was trained on: the gap between a training
shard's figures and the held-out shard's says whether the network is short of data (a wide gap) or of what it can
see and represent (a narrow one). ``--withheld`` adds the figures with each input withheld (:func:`withheld`).
The checkpoint reads each face and its mirror image, as the product does (``likeness.learned.runtime.read_faces``);
``--no-mirror`` reads each face once, as every figure before 6 December 2026 was taken.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]

import synth_metrics as metrics  # noqa: E402

from likeness.learned.dataset import VERSIONS, load, shard_path  # noqa: E402
from likeness.learned.features import CROP_SCALE, SCORE_COLS  # noqa: E402
from likeness.capture.blendshapes import find_task  # noqa: E402
from likeness.learned.runtime import ExpressionEncoder  # noqa: E402
from likeness.learned.trainset import features_of  # noqa: E402
from likeness.model.headmodel import load_ict, resolve_model_path  # noqa: E402

def crop_pixels(head) -> np.ndarray:
    """(E,) how far each expression shape moves the face at weight 1, in pixels of the encoder's crop: the 99th
    percentile over the face's vertices of the displacement across the view of a frontal head (x, y), at the
    crop's :data:`~likeness.learned.features.CROP_SCALE` pixels per distance between the outer eye corners."""
    corners = head.neutral[head.landmarks_68[[36, 45]]]
    per_metre = CROP_SCALE / np.linalg.norm(corners[0] - corners[1])
    moved = np.linalg.norm(head.expression_basis[:, :head.face_vertex_count, :2], axis=2)
    return np.percentile(moved, 99, axis=1) * per_metre


#: The last of the 60 training shards: the faces ``likeness.learned.train`` holds out.
VALIDATION_SHARD = 59


def withheld(encoder, names, truth: np.ndarray, features: np.ndarray, crops: np.ndarray) -> None:
    """The figures with one input or another withheld, to show what the network reads: MediaPipe's scores as none
    (as training's score drop shows them), the landmarks at the training set's mean (0 once standardised; as
    ``train --landmark-drop`` shows them), the crop a flat grey (never seen in training)."""
    import torch

    from likeness.learned.train import drop_landmarks

    no_scores = features.copy()
    no_scores[:, SCORE_COLS] = 0.0
    everyone = torch.ones(len(features), dtype=torch.bool)
    no_points = drop_landmarks(torch.from_numpy(features), everyone, encoder.net.mean.cpu()).numpy()
    grey = np.full_like(crops, 128)
    print("withheld                       on-shape  leak    AUC  side")
    for label, x, c in (("nothing", features, crops), ("scores", no_scores, crops), ("the crop", features, grey),
                        ("landmarks and scores", no_points, crops), ("all but the rotation", no_points, grey)):
        r = metrics.expression_metrics(names, truth, encoder.predict(x, c)[0])
        print(f"{label:30s}{r['on_shape_error']:9.3f}{r['leaked_mean']:6.2f}{r['auc_mean']:7.3f}"
              f"{r['side_accuracy']:6.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data-version", type=int, choices=VERSIONS, default=1)
    parser.add_argument("--data", type=Path, default=Path("out/encoder_data"), help="training-data cache folder")
    parser.add_argument("--shapes", type=int, default=12, help="how many shapes to list")
    parser.add_argument("--shard", type=int, default=VALIDATION_SHARD,
                        help="which shard (default: the held-out one; others were trained on)")
    parser.add_argument("--withheld", action="store_true", help="also the figures with each input withheld")
    parser.add_argument("--no-mirror", action="store_true", help="read each face once, not with its mirror image")
    args = parser.parse_args()
    path = shard_path(args.data, "train", args.shard, args.data_version)
    if not path.is_file():
        raise SystemExit(f"{path} is not there: make the training data first (python -m likeness.learned.train "
                         f"--data-version {args.data_version}).")
    head = load_ict(resolve_model_path(None))
    encoder = ExpressionEncoder(args.checkpoint, head.expression_names, "cpu", mirrored=not args.no_mirror,
                               task=find_task())
    data = load([path])
    data = {k: v[data["found"] > 0] for k, v in data.items()}
    features = features_of(data, encoder.template).astype(np.float32)
    read, _ = encoder.predict(features, data["crop"])
    truth = data["expression"].astype(np.float64)
    names = head.expression_names
    result = metrics.expression_metrics(names, truth, read)
    on = truth > 0
    strong = truth > 0.5
    held = "held out" if args.shard == VALIDATION_SHARD else "trained on"
    print(f"{path.name} ({held}): {len(truth)} faces, {on.sum(1).mean():.1f} shapes on per face")
    print(f"on-shape error {result['on_shape_error']:.3f}, leak {result['leaked_mean']:.2f}, AUC "
          f"{result['auc_mean']:.3f}, side {result['side_accuracy']:.0%} of {result['side_cases']}")
    print(f"read where on {read[on].mean():.2f} (true {truth[on].mean():.2f}); where true > 0.5: "
          f"{read[strong].mean():.2f} (true {truth[strong].mean():.2f})")
    share = np.array([np.abs(read - truth)[on[:, e], e].sum() for e in range(len(names))]) / on.sum()
    pixels = crop_pixels(head)
    print("shape               share of on-shape error  faces on  true  read   AUC  moves (crop px at weight 1)")
    for e in np.argsort(-share)[:args.shapes]:
        row = result["per_shape"][names[e]]
        print(f"{names[e]:20s}{share[e]:24.3f}{row['scenes_on']:10d}{row['mean_true_on']:6.2f}"
              f"{row['mean_fit_on']:6.2f}{row['auc']:6.2f}{pixels[e]:7.1f}")
    if args.withheld:
        withheld(encoder, names, truth, features, data["crop"])


if __name__ == "__main__":
    main()
