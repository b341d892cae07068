"""Measure how MediaPipe's face landmarks scatter around the head model's points (:mod:`likeness.capture.scatter`).

    python -m likeness.learned.scatter [--shards 60] [--rank 80] [--data-version 5]

reads the encoder's training renders (:mod:`likeness.learned.trainset`: the *train* skin family and its own seed,
none of the scenes a benchmark scores; shards are rendered first where missing), puts the correspondence table's
points on each scene's true mesh (:func:`likeness.learned.dataset.true_landmarks`), and keeps the leading
principal directions of MediaPipe's error in the face's upright frame. Needs numpy and MediaPipe only (no torch).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..capture.scatter import FACE_POINTS, SCATTER_FILE, LandmarkScatter, rigid_directions, upright_residuals
from .dataset import VERSIONS
from .trainset import rendered


def measure(data: dict[str, np.ndarray], rank: int, face: np.ndarray | None, modes: np.ndarray | None = None
            ) -> tuple[LandmarkScatter, np.ndarray]:
    """The scatter of the found faces in ``data`` (training shards with ``truth``), and their residuals (N, 936);
    with ``face`` (468, 3) (the model's neutral points) the head's rigid motion is kept out of the scatter."""
    keep = data["found"] > 0
    true_px = data["truth"][keep][..., :2] * np.array([1.0, -1.0])  # landmarks_3d's y up → the image's y down
    residuals = upright_residuals(data["points_px"][keep], true_px)
    rigid = None if face is None else rigid_directions(face)
    if rigid is not None and modes is not None and len(modes):  # (K, 468, 3) shape modes, seen from the front
        rigid = np.concatenate([rigid, np.stack([m[:, :2] * [1.0, -1.0] for m in modes], -1).reshape(-1, len(modes))], 1)
    return LandmarkScatter.estimate(residuals, rank, rigid), residuals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m likeness.learned.scatter", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("out/encoder_data"), help="training-data cache folder")
    parser.add_argument("--shards", type=int, default=60)
    parser.add_argument("--data-version", type=int, choices=VERSIONS, default=5)
    parser.add_argument("--rank", type=int, default=80, help="principal directions kept")
    parser.add_argument("--with-pose", action="store_true",
                        help="keep the head's rigid motion in the scatter (by default it is taken out)")
    parser.add_argument("--keep-identity", type=int, default=0, metavar="K",
                        help="also take the head model's first K identity modes out of the scatter")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering missing shards")
    parser.add_argument("--model", help="ICT model (.npz or folder); default as for `likeness reconstruct`")
    parser.add_argument("--out", type=Path, default=SCATTER_FILE)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data, model_path = rendered(args.data, args.shards, args.workers, args.model, args.data_version, truth=True)
    face = None
    if not args.with_pose:
        from ..model.correspondence import load_table
        from ..model.headmodel import load_ict

        head, table = load_ict(model_path), load_table()
        face = table.points(head.neutral.astype(np.float64))[:FACE_POINTS]
        modes = table.basis(head.identity_basis[:args.keep_identity].astype(np.float64))[:, :FACE_POINTS]
    scatter, residuals = measure(data, args.rank, face, modes)
    total = float(residuals.var(0).sum())
    print(f"{len(residuals)} faces; rms error {np.sqrt(total / residuals.shape[1]):.4f} inter-ocular distances a "
          f"coordinate; the {args.rank} directions hold {scatter.variances.sum() / total:.1%} of the variance")
    scatter.save(args.out, shards=str(args.shards), data_version=str(args.data_version),
                 command=f"python -m likeness.learned.scatter --shards {args.shards} --rank {args.rank} "
                         f"--data-version {args.data_version}" + (" --with-pose" if args.with_pose else ""))
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
