"""Tune the fit's weights on a tuning set of renders that the benchmark never sees.

Usage: .venv/bin/python bench/quality/tune_fit.py [SETTING=VALUE[,SETTING=VALUE...] ...]
       e.g.  tune_fit.py "" evidence_weight=100 evidence_weight=400 "evidence_weight=400,expression_sparsity=4"
             tune_fit.py refine "refine.edge_weight=0.5" "refine.openings=mouth"

Each variant's headline figures come with those of the encoder alone and of MediaPipe's scores on the same renders;
``--shapes`` also prints each variant's per-shape AUC (the fit, the encoder alone, MediaPipe's scores).
``--all`` takes all 150 scenes of the tuning plan instead of every other one (the other 75 rendered the first time,
about 11 minutes more): twice the cases, for comparisons the 75 leave within their noise (27 one-sided cases there).

``refine`` runs the refinement against the renders (``likeness.capture.refine``); ``refine.FIELD=VALUE`` sets a
``RefineSettings`` field and implies it (tuple fields take ``+``-separated values: ``refine.openings=eyes+mouth``).

The tuning set: every other scene of the benchmark's scene plan drawn with another seed (``synth_scenes.SEED + 7``:
other identities, expressions and poses), 75 renders dressed with the skin of the current pipeline, rendered once
into ``bench/results/tuning/`` (about 11 minutes on 2 cores) and reused. MediaPipe runs once per render; each
variant (``FitSettings`` fields, "" = the defaults) then refits all renders and prints the benchmark's headline
figures. Choose settings here, then report them on the benchmark (``synthetic.py``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import synth_scenes  # noqa: E402
import synth_metrics as metrics  # noqa: E402
import synthetic as bench  # noqa: E402

from likeness.model.correspondence import load_table  # noqa: E402
from likeness.capture.fit import FitSettings  # noqa: E402
from likeness.capture.refine import RefineSettings  # noqa: E402



class _Once:
    """Run the wrapped detector's ``detect`` / scorer's ``scores`` once per distinct input, then reuse."""

    def __init__(self, inner, method: str) -> None:
        self._inner, self._method, self._cache = inner, method, {}

    def __getattr__(self, name: str):
        if name != self._method:
            return getattr(self._inner, name)

        def cached(rgb: np.ndarray, key) -> object:
            k = (rgb.shape, int(rgb[::37, ::37].sum()), str(key))
            if k not in self._cache:
                self._cache[k] = getattr(self._inner, name)(rgb, key)
            return self._cache[k]
        return cached


def _value(text: str) -> int | float | tuple[str, ...]:
    """A refinement setting's value: a whole number, a number, or a ``+``-separated tuple of names."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return tuple(text.split("+"))


def main() -> None:
    args = sys.argv[1:]
    shapes, every = "--shapes" in args, "--all" in args
    args = [a for a in args if a not in ("--shapes", "--all")]
    model_file, engine, model = bench.setup("tuning")
    scenes = bench.make_scenes(model.expression_names, bench.face_centre(model), seed=synth_scenes.SEED + 7)
    scenes = scenes if every else scenes[::2]
    bench.render_missing(scenes, model, bench.skin_bundle(engine, model_file, bench.SKIN_SOURCE), 16,
                         bench.SKIN_SOURCE, False)
    engine._detector = _Once(engine.detector(), "detect")
    if engine.scorer() is not None:
        engine._scorer = _Once(engine.scorer(), "scores")
    perfect = [bench.perfect_landmarks(model, load_table(), scene) for scene in scenes]
    oracle = [bench.oracle_fit(engine, model_file, landmarks) for landmarks in perfect]
    for spec in args or [""]:
        parts = [part for part in spec.split(",") if part]
        refine = any(part == "refine" or part.startswith("refine.") for part in parts)
        changes = {k: _value(v) for k, v in (p.split("=") for p in parts if "=" in p and not p.startswith("refine."))}
        refining = {k[len("refine."):]: _value(v) for k, v in (p.split("=") for p in parts if p.startswith("refine."))}
        engine.settings = dataclasses.replace(FitSettings(), **changes)
        engine._models.clear()  # the landmark basis is built from the settings (landmark weights): rebuild it
        engine.refine_settings = dataclasses.replace(RefineSettings(), **refining)
        start = time.perf_counter()
        fits = [bench.analyse(engine, model_file, scene, refine) for scene in scenes]
        result = bench.evaluate(model, scenes, fits, oracle, perfect)
        summary = result["summary"]
        figures = ", ".join(f"{k} {summary[k]:.3f}" for k in metrics.HEADLINE)
        angles = " / ".join(f"{summary[f'{axis}_mean_deg']:.2f}" for axis in ("yaw", "pitch", "roll"))
        print(f"{spec or 'defaults'}: {figures}, yaw / pitch / roll {angles}° ({time.perf_counter() - start:.0f} s)",
              flush=True)
        for name, key in (("  the encoder alone", "encoder_alone"), ("  MediaPipe's scores", "mediapipe_scores")):
            if result.get(key):
                part = result[key]
                print(f"{name}: on_shape_error {part['on_shape_error']:.3f}, leaked_mean {part['leaked_mean']:.3f}, "
                      f"auc_mean {part['auc_mean']:.3f}, side_accuracy {part['side_accuracy']:.3f}", flush=True)
        if shapes:
            _print_shapes(result)


def _print_shapes(result: dict) -> None:
    """Per-shape AUC of the fit and, where the evaluation has them, of the encoder alone and MediaPipe's scores."""
    columns = [(name, part["per_shape"]) for name, part in
               (("fit", result), ("encoder alone", result.get("encoder_alone")),
                ("MediaPipe", result.get("mediapipe_scores"))) if part and "per_shape" in part]
    print("shape".ljust(18) + "".join(name.rjust(15) for name, _ in columns))
    for shape in columns[0][1]:
        cells = [table[shape]["auc"] for _, table in columns]
        print(shape.ljust(18) + "".join(("-" if c is None else f"{c:.3f}").rjust(15) for c in cells))


if __name__ == "__main__":
    main()
