"""Held-out synthetic benchmark for the expression encoder (issue 11): heads no training run ever saw.

Usage: .venv/bin/python bench/quality/heldout.py [--quick] [--rerender] [--fit FIELD=VALUE ...]   # the product as it ships
       LIKENESS_EXPRESSION_ENCODER=off .venv/bin/python bench/quality/heldout.py     # the landmark fit alone

Kept apart from training in code, not by habit:

- **Scenes**: the benchmark's scene plan (``synth_scenes``: neutral, single, one-sided, combined; 150 scenes) drawn
  from its own seed, :data:`SEED` (= ``synth_scenes.SEED + 13``); training draws from
  ``likeness.learned.train.DATA_SEED`` with another sampler (``likeness.learned.scenes``).
- **Skins**: the *heldout* family of ``likeness.learned.skins`` (odd seeds, the other half of each palette);
  training paints only the *train* family (even seeds).
- **Renders**: the NumPy renderer of ``likeness.learned.render`` (the Cycles benchmark, ``synthetic.py``, is the
  other check: its skin is a reconstruction of a dev photo, which training never uses).

The renders and their truth are cached in ``bench/results/heldout/``. The scores go to
``bench/results/heldout_metrics[_encoder].json`` and ``heldout_tables[...].md``, with the same figures and
references (MediaPipe's own scores, the fit on perfect landmarks) as ``synthetic.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]

import synth_scenes  # noqa: E402
import synthetic as bench  # noqa: E402

from likeness.model.camera import Camera  # noqa: E402
from likeness.model.correspondence import load_table  # noqa: E402
from likeness.model.headmodel import HeadModel  # noqa: E402
from likeness.learned.render import HeadRenderer, Lighting  # noqa: E402
from likeness.learned.skins import SkinPainter, skin_seeds  # noqa: E402

SEED = synth_scenes.SEED + 13
SKINS = 60


def lighting(light: dict[str, float]) -> Lighting:
    """The scene's key light (azimuth about up, elevation, from the camera's side; energy in W) and world fill
    as the NumPy renderer's lighting, in the camera frame."""
    az, el = np.radians(light["azimuth"]), np.radians(light["elevation"])
    direction = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    return Lighting(key_direction=direction, key=np.full(3, light["energy"] / 18.0), fill=np.full(3, light["world"] * 1.6),
                    specular=0.3, wrap=0.3)


def render_missing(scenes: list, model: HeadModel, rerender: bool) -> None:
    """Render (NumPy) the scenes whose PNG or truth is missing or out of date."""
    from PIL import Image

    painter, renderer = SkinPainter(model), HeadRenderer(model)
    skins = skin_seeds(SKINS, "heldout")
    start, done = time.perf_counter(), 0
    for k, scene in enumerate(scenes):
        png, truth = bench.CACHE / f"{scene.name}.png", bench.CACHE / f"{scene.name}.json"
        skin = skins[k % len(skins)]
        record = json.loads(json.dumps({"scene": scene.as_dict(),
                                        "render": {"renderer": "likeness.learned.render", "skin": skin,
                                                   "family": "heldout"}}))
        if not rerender and png.is_file() and truth.is_file() and json.loads(truth.read_text()) == record:
            continue
        rng = np.random.default_rng([SEED, k])
        width, height = scene.image_size
        m2c = np.array(scene.model_to_camera)
        rgb = renderer.render(synth_scenes.posed_vertices(model, scene), painter.paint(skin, "heldout"), m2c[:3, :3],
                              m2c[:3, 3], Camera(scene.focal_px, (width / 2.0, height / 2.0), (width, height)),
                              lighting(scene.light), rng)
        Image.fromarray(rgb).save(png)
        truth.write_text(json.dumps(record, indent=1))
        done += 1
    if done:
        print(f"rendered {done} scenes in {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 scenes instead of 150")
    parser.add_argument("--rerender", action="store_true", help="render again even where cached renders exist")
    parser.add_argument("--fit", action="append", default=[], metavar="FIELD=VALUE",
                        help="a fit setting (FitSettings field, a number) for this run only: _fit_FIELD-VALUE files")
    args = parser.parse_args()
    from photo_fits import fit_settings, fit_suffix

    fit = fit_settings(args.fit)
    model_file, engine, model = bench.setup("heldout", fit)
    scenes = synth_scenes.make_scenes(model.expression_names, bench.face_centre(model), quick=args.quick, seed=SEED)
    render_missing(scenes, model, args.rerender)
    start = time.perf_counter()
    bench.analyse(engine, model_file, scenes[0])  # warm-up
    fits = [bench.analyse(engine, model_file, scene) for scene in scenes]
    perfect = [bench.perfect_landmarks(model, load_table(), scene) for scene in scenes]
    oracle = [bench.oracle_fit(engine, model_file, landmarks) for landmarks in perfect]
    results = bench.evaluate(model, scenes, fits, oracle, perfect)
    encoder = engine.encoder(model)
    results["run"] = {"commit": bench.git_state(), "quick": args.quick, "seed": SEED, "skins": "heldout",
                      "blendshapes": engine.scorer() is not None,
                      "encoder": None if encoder is None else str(encoder.path),
                      "analyse_s": round(time.perf_counter() - start, 1)}
    bench.write_report("heldout", fit_suffix(fit)
                       + ("_encoder" if encoder is not None else ""), results)


if __name__ == "__main__":
    main()
