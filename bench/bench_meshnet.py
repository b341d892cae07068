"""Speed of the face-mesh backbone (``likeness.learned.meshnet``) at each input side it may run at.

Usage: .venv/bin/python bench/bench_meshnet.py [--runs 20]
On the astronaut's face crop (scikit-image), in batches of 2 (a photo and its mirror image) and 8 (video), the
network as rebuilt (``load_meshnet``) and as ``backbone_features`` runs it (traced and frozen): median
milliseconds per face. Needs torch and MediaPipe's Face Landmarker bundle (``$LIKENESS_MEDIAPIPE_TASK`` or
``likeness models install mediapipe-blendshapes``). Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def main() -> None:
    import torch
    from skimage import data

    from likeness.capture.blendshapes import find_task
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.features import crop_template, face_crop
    from likeness.learned.meshnet import SIDES, backbone_input, load_meshnet, traced
    from likeness.model.correspondence import load_table
    from likeness.model.headmodel import load_ict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    task = find_task()
    if task is None:
        raise SystemExit("MediaPipe's Face Landmarker bundle is not installed "
                         "(`likeness models install mediapipe-blendshapes` or set $LIKENESS_MEDIAPIPE_TASK).")
    net = load_meshnet(task)
    rgb = data.astronaut()
    found = LandmarkDetector(max_faces=1).detect(rgb)
    ict = load_ict()
    crop = face_crop(rgb, found.points_px, crop_template(load_table().points(ict.neutral.astype(np.float64))))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per face, median of {args.runs}")
    print("side  batch  rebuilt  traced")
    for side in SIDES:
        for batch in (2, 8):
            image = backbone_input(torch.from_numpy(np.stack([crop] * batch)), side)
            with torch.inference_mode():
                fast_net = traced(net, image)
                plain = _median_ms(lambda: net(image), args.runs) / batch
                fast = _median_ms(lambda: fast_net(image), args.runs) / batch
            print(f"{side:4d}  {batch:5d}  {plain:7.1f}  {fast:6.1f}")


if __name__ == "__main__":
    main()
