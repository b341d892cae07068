"""Measure how MediaPipe's landmarks move with each ICT expression shape, on renders whose expression is known.

Usage: .venv/bin/python bench/quality/expression_response.py [--ridge 1.0] [--rendered-only]

About 20 minutes on 2 CPU cores the first time (150 Cycles renders), a minute with the renders cached.

A question about the fit's gap on the synthetic benchmark (docs/quality.md): do the detector's landmarks follow
an ICT expression as the correspondence table's surface points do, or does MediaPipe's own face model hold them
back (which would make the fit under-read every expression)? This script learns the detector's response and
tries it in the fit:

1. Training scenes: the benchmark's scene plan (``synth_scenes.make_scenes``: single shapes at 0.3–1.0, one-sided
   and combined ones, yaw ±45°) drawn with this script's own seed, dressed in turn with the calibration skins
   (``calibrate_correspondence.SKINS``, none of them the benchmark's), rendered with the benchmark's Cycles
   renderer into ``bench/results/expressions/``.
2. Per render the product's detector finds the 468 landmarks. Their offsets from where the table puts them on
   the true posed head, taken to metres at each landmark's depth, are modelled as
   ``Σ_e w_e · motion_e + bias`` in the head frame (3D, seen through each render's projection), with the
   scene's true weights ``w``; ``motion`` (53,468,3) and a per-landmark ``bias`` are solved per landmark by
   ridge regression (``--ridge``, relative to the data's strength), with Huber weights against detector
   failures. Face-oval landmarks slide along the silhouette (``likeness.capture.contour``) and are left out.
3. Printed: per shape, the detector's gain along ICT's own motion (1 = it follows the surface point), and the
   product's analysis on every fifth scene (held out of the regression) with ICT's shapes at the landmarks and
   with the learned motion added to them. Written: ``bench/results/expressions/motion.npz`` and
   ``validation_ridge_<r>.json``.

Reads the ICT model and the dev photos (skins) from ../shared beside the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "scripts"), str(Path(__file__).resolve().parent)]

import calibrate_correspondence as calib  # noqa: E402
import synth_metrics as metrics  # noqa: E402
import synthetic as bench  # noqa: E402
from likeness.model.camera import Camera  # noqa: E402
from likeness.model.correspondence import FACE_OVAL, Correspondence, load_table  # noqa: E402
from likeness.errors import LikenessError  # noqa: E402
from likeness.capture.fit import LandmarkBasis  # noqa: E402
from likeness.model.headmodel import HeadModel  # noqa: E402
from likeness.capture.images import load_photo  # noqa: E402
from likeness.service.pipeline import Engine  # noqa: E402
from synth_scenes import Scene, make_scenes  # noqa: E402

SEED = 52718093  # neither the benchmark's nor the tuning set's nor the correspondence calibration's
FOLDER = bench.RESULTS / "expressions"
HOLD_OUT = 5  # every HOLD_OUT-th scene is kept for validation
HUBER_M = 0.003  # metres: landmark offsets beyond this count linearly (detector failures)
SAMPLES = 16


def training_scenes(model: HeadModel) -> list[tuple[Scene, str]]:
    """The scene plan with this script's seed, each scene with the calibration skin that dresses it."""
    scenes = make_scenes(model.expression_names, bench.face_centre(model), seed=SEED)
    return [(scene, calib.SKINS[i % len(calib.SKINS)]) for i, scene in enumerate(scenes)]


def detect(scenes: list[tuple[Scene, str]]) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's 468 landmarks per render (R,468,2) px and whether a face was found (R,), cached."""
    cache = FOLDER / "detections.npz"
    key = calib.scenes_key(scenes)
    if cache.is_file():
        data = np.load(cache)
        if str(data["key"]) == key:
            return data["points"], data["found"]
    from likeness.capture.landmarks import LandmarkDetector

    detector = LandmarkDetector()
    points = np.full((len(scenes), 468, 2), np.nan)
    found = np.zeros(len(scenes), bool)
    for k, (scene, _) in enumerate(scenes):
        try:
            points[k] = detector.detect(load_photo(FOLDER / f"{scene.name}.png").rgb, scene.name).points_px[:468]
            found[k] = True
        except LikenessError as exc:
            print(f"{scene.name}: {exc.message}", flush=True)
    detector.close()
    np.savez(cache, points=points, found=found, key=np.array(key))
    return points, found


def observations(model: HeadModel, table: Correspondence, scenes: list[Scene],
                 points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per render: the head-frame → image-plane map at each landmark (S,468,2,3), the landmarks' offsets from
    the table's points on the true head (S,468,2), both in metres at the landmark's depth, and the regressors
    (S,E+1): the true weights and a constant 1."""
    names = model.expression_names
    maps, offsets, regressors = [], [], []
    for scene, detected in zip(scenes, points):
        identity = np.zeros(model.identity_basis.shape[0])
        identity[:len(scene.identity)] = scene.identity
        weights = scene.expression_vector(names)
        x = table.points(model.vertices(identity, weights).astype(np.float64))
        m2c = np.array(scene.model_to_camera)
        width, height = scene.image_size
        camera = Camera(scene.focal_px, (width / 2.0, height / 2.0), scene.image_size)
        q = x @ m2c[:3, :3].T + m2c[:3, 3]
        px, depth = camera.project(q)
        metres = (depth / camera.focal_px)[:, None]
        maps.append(np.einsum("lij,jk->lik", camera.projection_jacobian(q), m2c[:3, :3]) * metres[..., None])
        offsets.append((detected - px) * metres)
        regressors.append(np.r_[weights, 1.0])
    return np.array(maps), np.array(offsets), np.array(regressors)


def solve(maps: np.ndarray, offsets: np.ndarray, regressors: np.ndarray, ridge: float,
          rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per-landmark ridge regression ``offset ≈ maps · (Σ_e w_e · motion_e + bias)`` with Huber weights:
    the motions (E,L,3) and biases (L,3), metres, head frame.

    ``ridge`` is relative: each shape's penalty is ``ridge`` times the mean of its regressor's square over the
    renders where it is on, so a shape's motion is learned once it is on in a handful of renders.
    """
    s, n_lm = maps.shape[:2]
    p = regressors.shape[1]
    on = regressors > 0
    strength = np.array([(regressors[on[:, j], j] ** 2).mean() if on[:, j].any() else 1.0 for j in range(p)])
    penalty = np.repeat(ridge * strength, 3)
    penalty[-3:] = 1e-6  # the bias is free
    robust = np.ones((s, n_lm))
    for _ in range(rounds):
        mtm = np.einsum("slij,slik->sljk", maps, maps) * robust[..., None, None]  # (S,L,3,3)
        mtr = np.einsum("slij,sli->slj", maps, offsets) * robust[..., None]  # (S,L,3)
        outer = np.einsum("se,sf->sef", regressors, regressors)  # (S,P,P)
        normal = (outer.reshape(s, p * p).T @ mtm.reshape(s, n_lm * 9)).reshape(p, p, n_lm, 3, 3)
        normal = normal.transpose(2, 0, 3, 1, 4).reshape(n_lm, 3 * p, 3 * p)
        rhs = np.einsum("se,slj->lej", regressors, mtr).reshape(n_lm, 3 * p)
        normal[:, np.arange(3 * p), np.arange(3 * p)] += penalty
        coef = np.linalg.solve(normal, rhs[..., None])[..., 0].reshape(n_lm, p, 3)
        predicted = np.einsum("slij,slj->sli", maps, np.einsum("se,lej->slj", regressors, coef))
        error = np.linalg.norm(offsets - predicted, axis=-1)
        robust = np.minimum(1.0, HUBER_M / np.maximum(error, 1e-12))
    motion = coef[:, :-1].transpose(1, 0, 2)
    motion[:, list(FACE_OVAL)] = 0.0
    return motion, coef[:, -1]


def detector_gains(ict: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """Per shape, the median over its moving landmarks (≥ 30 % of its largest motion, face oval excluded) of the
    detector's motion projected on ICT's, over ICT's: 1 = the landmarks follow the surface points."""
    size = np.linalg.norm(ict, axis=-1)
    size[:, list(FACE_OVAL)] = 0.0
    gains = []
    for own, extra, norm in zip(ict, learned, size):
        moving = norm >= 0.3 * norm.max()
        gains.append(np.median(((own + extra) * own).sum(-1)[moving] / norm[moving] ** 2))
    return np.array(gains)


def held_out_figures(engine: Engine, model_file: str | None, scenes: list[Scene]) -> dict[str, float]:
    """The benchmark's headline figures of the product's analysis on ``scenes`` (renders in FOLDER)."""
    fits = [bench.analyse(engine, model_file, scene) for scene in scenes]
    ok = [i for i, f in enumerate(fits) if "error" not in f]
    model = engine.model(model_file)[0]
    summary = metrics.summary(*bench.score(model, [scenes[i] for i in ok], [fits[i] for i in ok]))
    return {k: round(float(summary[k]), 3) for k in metrics.HEADLINE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ridge", type=float, default=1.0, help="penalty on a shape's learned motion, relative")
    parser.add_argument("--model", help="ICT model .npz (default: ../shared, $LIKENESS_ICT_MODEL, installed)")
    parser.add_argument("--rendered-only", action="store_true",
                        help="learn from the scenes already rendered instead of rendering the missing ones")
    args = parser.parse_args()

    model_file = bench.model_path(args.model)
    bench.use_shared_blendshape_model()
    engine = Engine()
    model, _ = engine.model(model_file)
    pairs = training_scenes(model)
    FOLDER.mkdir(parents=True, exist_ok=True)
    if args.rendered_only:
        pairs = [(s, skin) for s, skin in pairs if (FOLDER / f"{s.name}.json").is_file()]
    else:
        calib.render_missing(pairs, model, model_file, SAMPLES, FOLDER)
    points, found = detect(pairs)
    scenes = [scene for scene, _ in pairs]
    held = np.arange(len(scenes)) % HOLD_OUT == HOLD_OUT - 1
    train = found & ~held
    start = time.perf_counter()
    maps, offsets, regressors = observations(model, load_table(), [scenes[i] for i in np.flatnonzero(train)],
                                             points[train])
    motion, bias = solve(maps, offsets, regressors, args.ridge)
    print(f"learned from {train.sum()} renders in {time.perf_counter() - start:.1f} s; mean |motion| "
          f"{np.abs(motion).mean() * 1000:.2f} mm, mean |bias| {np.abs(bias).mean() * 1000:.2f} mm", flush=True)
    plain = LandmarkBasis.build(model, load_table(), engine.settings)  # ICT's own motion at the table's points
    gains = detector_gains(plain.expression, motion)
    print("detector gain along ICT's motion, median over each shape's moving landmarks: "
          + ", ".join(f"{n} {g:.2f}" for n, g in zip(model.expression_names, gains)), flush=True)

    bench.CACHE = FOLDER
    validation = [scenes[i] for i in np.flatnonzero(held)]
    figures = {}
    for label, basis in (("ICT's motion", plain), ("learned motion", replace(plain, expression=plain.expression
                                                                                   + motion))):
        engine._models[next(iter(engine._models))] = (model, basis)  # the engine's cached basis, swapped
        figures[label] = held_out_figures(engine, model_file, validation)
    report = {"ridge": args.ridge, "train": int(train.sum()), "held_out": len(validation),
              "figures": figures}
    (FOLDER / f"validation_ridge_{args.ridge:g}.json").write_text(json.dumps(report, indent=1))
    for label, row in figures.items():
        print(f"{label:>15}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    np.savez(FOLDER / "motion.npz", names=np.array(model.expression_names), motion=motion, bias=bias)


if __name__ == "__main__":
    main()
