"""Does MediaPipe's landmark depth carry the identity's shape beyond the mean head? (issue 13, a lead for the fit)

Usage: .venv/bin/python bench/quality/depth_identity.py
Reads the tuning renders of ``tune_fit.py`` (``bench/results/tuning/``: seed ``SEED + 7``, never a benchmark's scenes
or any photo; run ``tune_fit.py`` once to make them). Per render and landmark: the true camera-frame depth's
deviation from the mean head's (same expression and pose) against MediaPipe's relative depth's deviation from it,
both in pixels at the face's distance; and the same for the 2D positions, as the yardstick. Prints the correlations,
also with each landmark's fixed offset between MediaPipe's mesh and ICT's removed (docs/quality.md section 6).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from likeness.errors import NoFaceFound  # noqa: E402
from likeness.service.pipeline import Engine  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TUNING = REPO / "bench" / "results" / "tuning"


def deviations(engine: Engine, basis, scene_file: Path) -> tuple[np.ndarray, ...] | None:
    """(true depth, MediaPipe depth, true 2D, MediaPipe 2D) deviations from the mean head, pixels; None without a
    face found."""
    scene = json.loads(scene_file.read_text())["scene"]
    rgb = cv2.cvtColor(cv2.imread(str(scene_file.with_suffix(".png"))), cv2.COLOR_BGR2RGB)
    try:
        found = engine.detector().detect(rgb, scene_file.stem)
    except NoFaceFound:
        return None
    k = basis.identity.shape[0]
    identity = np.zeros(k)
    identity[:min(k, len(scene["identity"]))] = scene["identity"][:k]
    expression = np.array([scene["expression"].get(name, 0.0) for name in basis.names])
    to_camera = np.array(scene["model_to_camera"])
    focal = scene["focal_px"]
    true = basis.points(identity, expression) @ to_camera[:3, :3].T + to_camera[:3, 3]
    mean = basis.points(np.zeros(k), expression) @ to_camera[:3, :3].T + to_camera[:3, 3]
    distance = -true[:, 2].mean()
    n = len(basis.base)

    def depth(q: np.ndarray) -> np.ndarray:  # toward the camera, pixels at the face's distance
        return (q[:, 2] - q[:, 2].mean()) * focal / distance

    def flat(q: np.ndarray) -> np.ndarray:  # projected, x right and y up, centred
        px = q[:, :2] / -q[:, 2:3] * focal
        return px - px.mean(0)

    seen_depth = -(found.depth_px[:n] - found.depth_px[:n].mean())  # MediaPipe: smaller is nearer
    seen_flat = np.stack([found.points_px[:n, 0], -found.points_px[:n, 1]], 1)
    seen_flat -= seen_flat.mean(0)
    return depth(true) - depth(mean), seen_depth - depth(mean), flat(true) - flat(mean), seen_flat - flat(mean)


def correlation(truth: np.ndarray, seen: np.ndarray, fixed_offsets_removed: bool) -> float:
    """Correlation over renders × landmarks (× axes); optionally each landmark's mean over the renders removed."""
    if fixed_offsets_removed:
        truth, seen = truth - truth.mean(0, keepdims=True), seen - seen.mean(0, keepdims=True)
    return float(np.corrcoef(truth.ravel(), seen.ravel())[0, 1])


def main() -> None:
    engine = Engine()
    model = os.environ.get("LIKENESS_ICT_MODEL") or str(REPO.parent / "shared" / "models" / "ict_facekit"
                                                        / "ict_face_model.npz")
    basis = engine.model(model)[1]
    rows = [r for f in sorted(TUNING.glob("*.json")) if (r := deviations(engine, basis, f)) is not None]
    if not rows:
        raise SystemExit(f"No tuning renders in {TUNING}: run bench/quality/tune_fit.py once.")
    true_depth, seen_depth, true_flat, seen_flat = (np.stack(part) for part in zip(*rows))
    print(f"{len(rows)} tuning renders; identity's own deviation from the mean head: depth "
          f"{true_depth.std():.2f} px, 2D {true_flat.std():.2f} px")
    for label, truth, seen in (("depth", true_depth, seen_depth), ("2D", true_flat, seen_flat)):
        print(f"{label:5s} MediaPipe against the truth: correlation {correlation(truth, seen, False):.3f}, "
              f"{correlation(truth, seen, True):.3f} with each landmark's fixed offset removed")


if __name__ == "__main__":
    main()
