"""Which of MediaPipe's landmarks cost the fit its accuracy: perfect landmarks with one region's swapped for the
detector's, on the synthetic benchmark's renders.

Usage: .venv/bin/python bench/quality/landmark_regions.py   (after synthetic.py has rendered its scenes; ~3 min)

The fit on perfect landmarks (the correspondence table's points on the true mesh, projected exactly) nearly meets
every target; on MediaPipe's landmarks it does not. Here each fit starts from the perfect landmarks and takes the
detector's points for one region only (eyes, brows, lips, nose, face oval; "interior" = the 316 landmarks in none
of them: cheeks, forehead, under the eyes), then for all named regions, then for every landmark. The fit is the
plain landmark fit (``fit_landmarks`` with the product's settings, no learned scores, no gaze stage), scored with
the benchmark's headline figures. Writes ``bench/results/landmark_regions.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]

import synth_metrics as metrics  # noqa: E402
import synthetic as bench  # noqa: E402
from likeness.model.correspondence import load_table  # noqa: E402
from likeness.capture.fit import Observation, fit_landmarks  # noqa: E402
from likeness.capture.images import load_photo  # noqa: E402
from likeness.service.pipeline import Engine  # noqa: E402
from synth_scenes import make_scenes  # noqa: E402


def main() -> None:
    engine = Engine(use_blendshapes=False)
    model_file = bench.model_path(None)
    model, basis = engine.model(model_file)
    scenes = make_scenes(model.expression_names, bench.face_centre(model))
    missing = [s.name for s in scenes if not (bench.CACHE / f"{s.name}.png").is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} renders are missing (e.g. {missing[0]}): run synthetic.py first.")
    table = load_table()
    perfect = [bench.perfect_landmarks(model, table, scene) for scene in scenes]
    detected = [engine.detector().detect(load_photo(bench.CACHE / f"{s.name}.png").rgb, s.name).points_px[:468]
                for s in scenes]
    regions = {name: np.isin(np.arange(468), ids) for name, ids in metrics.landmark_regions().items()}
    named = np.any(list(regions.values()), axis=0)
    variants = {"none (perfect)": np.zeros(468, bool), **regions, "interior": ~named, "all named": named,
                "all (MediaPipe)": np.ones(468, bool)}
    results = {}
    for label, swap in variants.items():
        fits = []
        for ideal, found in zip(perfect, detected):
            points = ideal.points_px.copy()
            points[swap] = found[swap]
            fit = fit_landmarks(basis, [Observation(points, ideal.depth_px, ideal.camera)], engine.settings)
            fits.append({"identity": fit.identity, "rotation": fit.photos[0].rotation,
                         "expression": fit.photos[0].expression})
        summary = metrics.summary(*bench.score(model, scenes, fits))
        results[label] = {"landmarks": int(swap.sum()),
                          **{k: round(float(summary[k]), 3) for k in metrics.HEADLINE}}
        print(f"{label:>16} ({swap.sum():3d}): " + ", ".join(f"{k} {summary[k]:.3f}" for k in metrics.HEADLINE),
              flush=True)
    (bench.RESULTS / "landmark_regions.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
