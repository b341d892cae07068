"""Personalised expression shapes: do ICT's generic deltas, added to a fitted identity, push the lids or lips
through each other or the lids into the eyeball at full weight?

Usage: .venv/bin/python bench/bench_shapes.py [--samples 40]
Identities: the mean head (0), ``--samples`` draws from the model's prior N(0, 1), and the identities fitted to the
first 8 dev photos. For every expression at weight 1 alone (and the pairs in :data:`COMBOS`), in millimetres,
head frame:

- lid crossing: how far the upper lid's edge (MediaPipe eye-contour points on the ICT surface) ends up below the
  lower lid's edge, worst of the 7 column pairs per eye (> 0 = the lids pass through each other);
- lip crossing: the same for the inner lip contour (9 column pairs); a proxy only: shapes that roll or press the
  lips move these points in depth too, so a positive value there is not by itself an intersection;
- eyeball penetration: deepest face-region vertex within 2 cm of an eyeball centre that lies inside its sphere
  (radius as in :func:`likeness.capture.gaze.eyeballs`), minus the same figure on the neutral head (the lids rest on
  it).

Prints the worst shapes and writes bench/results/shapes.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from likeness.model.correspondence import load_table
from likeness.capture.gaze import eyeballs
from likeness.model.headmodel import load_ict
from likeness.capture.images import load_photo
from likeness.service.pipeline import Engine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: MediaPipe contour columns (upper point, lower point), per feature.
LIDS = {"R": ([246, 161, 160, 159, 158, 157, 173], [7, 163, 144, 145, 153, 154, 155]),
        "L": ([466, 388, 387, 386, 385, 384, 398], [249, 390, 373, 374, 380, 381, 382])}
LIPS = ([191, 80, 81, 82, 13, 312, 311, 310, 415], [95, 88, 178, 87, 14, 317, 402, 318, 324])
NEAR_EYE_M = 0.02
#: Shapes that only make sense together (mouthClose is a corrective of jawOpen: the fit keeps it ≤ jawOpen).
COMBOS = {"jawOpen+mouthClose": ("jawOpen", "mouthClose")}


def crossing_mm(points: np.ndarray, upper: list[int], lower: list[int]) -> np.ndarray:
    """Worst (upper below lower) distance in mm over column pairs; points (..., 468, 3) → (...)."""
    return 1000 * (points[..., lower, 1] - points[..., upper, 1]).max(-1)


def penetration_mm(face: np.ndarray, balls: dict, near: dict[str, np.ndarray]) -> float:
    """Deepest face vertex inside either eyeball sphere (mm, 0 when none), face (V,3)."""
    depth = 0.0
    for side, ball in balls.items():
        dist = np.linalg.norm(face[near[side]] - ball.centre, axis=1)
        depth = max(depth, float((ball.radius - dist).max()))
    return 1000 * max(depth, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="identities drawn from the prior")
    args = parser.parse_args()
    model_file = os.environ.get("LIKENESS_ICT_MODEL") or str(SHARED / "models/ict_facekit/ict_face_model.npz")
    model = load_ict(model_file)
    corr = load_table()
    k = 60
    identities = {"mean": np.zeros(k)}
    rng = np.random.default_rng(0)
    identities.update({f"prior_{i:02d}": rng.normal(0, 1, k) for i in range(args.samples)})
    engine = Engine(use_blendshapes=False)
    for photo in sorted((SHARED / "data/faces_dev/images").glob("dev_*.jpg"))[:8]:
        result, _ = engine.analyse([load_photo(photo)], model_file)
        identities[photo.stem] = result.identity
    names = model.expression_names
    labels = (*names, *COMBOS)
    face_n = model.face_vertex_count
    rows = {}
    for label, identity in identities.items():
        neutral = model.vertices(identity)
        balls = eyeballs(model, identity)
        near = {s: np.flatnonzero(np.linalg.norm(neutral[:face_n] - b.centre, axis=1) < NEAR_EYE_M)
                for s, b in balls.items()}
        rest_depth = penetration_mm(neutral[:face_n], balls, near)
        combos = [sum(model.expression_basis[names.index(n)] for n in parts) for parts in COMBOS.values()]
        posed = neutral[None] + np.concatenate([model.expression_basis, combos]).astype(np.float64)  # alone at 1
        lm = np.stack([corr.points(p) for p in posed])  # (E,468,3)
        lids = np.maximum(crossing_mm(lm, *LIDS["L"]), crossing_mm(lm, *LIDS["R"]))
        lips = crossing_mm(lm, *LIPS)
        depth = np.array([penetration_mm(p[:face_n], balls, near) for p in posed]) - rest_depth
        rows[label] = {"lid_mm": lids, "lip_mm": lips, "eyeball_mm": depth}
    summary = {}
    for metric in ("lid_mm", "lip_mm", "eyeball_mm"):
        table = np.array([r[metric] for r in rows.values()])  # (identities, E)
        mean_head = rows["mean"][metric]
        personal = table[1:]
        worst = np.argsort(-personal.max(0))[:6]
        summary[metric] = {labels[i]: {"mean_head": round(float(mean_head[i]), 3),
                                      "personal_median": round(float(np.median(personal[:, i])), 3),
                                      "personal_p90": round(float(np.percentile(personal[:, i], 90)), 3),
                                      "personal_max": round(float(personal[:, i].max()), 3),
                                      "share_over_0_5mm": round(float((personal[:, i] > 0.5).mean()), 3)}
                           for i in worst}
        print(f"\n{metric}: worst shapes at full weight (mean head | personalised median / p90 / max, share > 0.5 mm)")
        for name, v in summary[metric].items():
            print(f"  {name:18s} {v['mean_head']:7.2f} | {v['personal_median']:6.2f} {v['personal_p90']:6.2f} "
                  f"{v['personal_max']:6.2f}  {v['share_over_0_5mm']:.0%}")
    out = REPO / "bench" / "results" / "shapes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"identities": list(identities), "worst": summary}, indent=1))
    print(f"\nWrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
