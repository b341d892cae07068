"""Speed of the expression encoder (issue 11: ≤ 20 ms per photo on 2 CPU cores).

Usage: .venv/bin/python bench/bench_encoder.py [--runs 200] [--device auto]
On the astronaut portrait (scikit-image): MediaPipe once, then per photo the encoder's inputs (features and face
crop) and the network, one photo at a time and in video batches of ``likeness.capture.track.ENCODER_BATCH``. Prints
median and 90th-percentile milliseconds per photo and writes bench/results/encoder_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from skimage import data

    from likeness.model.headmodel import load_ict
    from likeness.capture.blendshapes import find_task
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.features import score_vector
    from likeness.learned.runtime import ExpressionEncoder, find_weights
    from likeness.capture.track import ENCODER_BATCH

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    model_file = os.environ.get("LIKENESS_ICT_MODEL") or str(REPO.parent / "shared" / "models" / "ict_facekit"
                                                              / "ict_face_model.npz")
    weights = find_weights()
    if weights is None:
        raise SystemExit("No expression encoder checkpoint (see docs/encoder.md).")
    encoder = ExpressionEncoder(weights, load_ict(model_file).expression_names, args.device, task=find_task())
    rgb = data.astronaut()
    found = LandmarkDetector(max_faces=1).detect(rgb)
    scores = score_vector(None)

    def one() -> None:
        features, crop = encoder.inputs(rgb, found.points_px, found.depth_px, scores)
        encoder.predict(features[None], crop[None])

    def batch() -> None:
        inputs = [encoder.inputs(rgb, found.points_px, found.depth_px, scores) for _ in range(ENCODER_BATCH)]
        encoder.predict(np.stack([f for f, _ in inputs]), np.stack([c for _, c in inputs]))

    results = {}
    for name, fn, per in (("single_photo_ms", one, 1), ("video_batch_ms_per_frame", batch, ENCODER_BATCH)):
        for _ in range(5):
            fn()
        times = []
        for _ in range(max(args.runs // per, 10)):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000.0 / per)
        results[name] = {"median": float(np.median(times)), "p90": float(np.percentile(times, 90))}
        print(f"{name}: median {results[name]['median']:.2f} ms, p90 {results[name]['p90']:.2f} ms")
    import torch

    out = REPO / "bench" / "results" / "encoder_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
                                          f"({torch.get_num_threads()} threads)", "device": encoder.device,
                               "checkpoint": str(weights), **results}, indent=1))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
