"""Synthetic ground truth (issue 3, measurement 1): render heads with known identity, expression and pose, run
the product's analysis on the renders, and score what it recovers.

Usage: .venv/bin/python bench/quality/synthetic.py [--quick] [--rerender] [--samples 16] [--fit FIELD=VALUE ...]
       LIKENESS_EXPRESSION_ENCODER=off .venv/bin/python bench/quality/synthetic.py  # the landmark fit alone
The product's default (the expression encoder where torch is installed) writes ``..._encoder`` results files.

1. Scenes (``synth_scenes.py``, fixed seed): ICT identities, expressions (single, one-sided, combined,
   neutral), head poses (yaw ±45°, pitch ±15°, roll ±10°), a 50 mm full-frame-equivalent camera 0.5–0.8 m away.
2. Renders (``synth_render.py``): Blender Cycles on the CPU, dressed with the skin textures, eyes and teeth of
   one real reconstruction of a dev photo. Cached under ``bench/results/synthetic/`` with each scene's ground
   truth (``<scene>.json``) and reused while the scene and render settings are unchanged.
3. Analysis: ``Engine.analyse`` (landmarks and fit, the product's code path) on each render, one warm engine.
   Beside it, two references: MediaPipe's own blendshape scores (the baseline the fit should beat) and the fit
   alone on perfect landmarks (the correspondence table's points on the true mesh: what the fit can do when the
   detector agrees with the table).
4. Metrics (``synth_metrics.py``): printed, and written to ``bench/results/synthetic_metrics.json`` (all
   figures, per shape, per scene) and ``bench/results/synthetic_tables.md`` (the tables of docs/quality.md);
   ``..._no_blendshapes.*`` with ``--no-blendshapes``.

Reads the ICT model, MediaPipe's blendshape model and the dev photo from ../shared beside the repository unless
``--model``, ``--source``, ``$LIKENESS_ICT_MODEL`` or ``$LIKENESS_MEDIAPIPE_TASK`` say otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "scripts"), str(Path(__file__).resolve().parent)]

from likeness.capture.blendshapes import to_weights  # noqa: E402
from likeness.model.camera import Camera  # noqa: E402
from likeness.model.correspondence import Correspondence, load_table  # noqa: E402
from likeness.errors import LikenessError  # noqa: E402
from likeness.capture.fit import Observation, fit_landmarks  # noqa: E402
from likeness.model.headmodel import HeadModel  # noqa: E402
from likeness.capture.images import load_photo  # noqa: E402
from likeness.learned.dataset import true_points_px  # noqa: E402
from likeness.service.pipeline import Engine, ReconstructRequest  # noqa: E402

import synth_metrics as metrics  # noqa: E402
import synth_report as report  # noqa: E402
from synth_scenes import Scene, eye_turns, make_scenes, posed_vertices  # noqa: E402

SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results"
CACHE = RESULTS / "synthetic"
SKIN_SOURCE = SHARED / "data" / "faces_dev" / "images" / "dev_000_london_002_03.jpg"
SKIN_TEXTURE_SIZE = 1024


def model_path(arg: str | None) -> str | None:
    """``--model``, else ``$LIKENESS_ICT_MODEL``, else the copy in ../shared, else None (the installed one)."""
    shared = SHARED / "models" / "ict_facekit" / "ict_face_model.npz"
    return arg or os.environ.get("LIKENESS_ICT_MODEL") or (str(shared) if shared.is_file() else None)


def use_shared_blendshape_model() -> None:
    """Let the engine find MediaPipe's blendshape model in ../shared when it is not installed or set."""
    task = SHARED / "models" / "mediapipe_face_landmarker" / "face_landmarker.task"
    if task.is_file():
        os.environ.setdefault("LIKENESS_MEDIAPIPE_TASK", str(task))


def setup(cache: str, fit: dict[str, float] | None = None) -> tuple[str | None, Engine, HeadModel]:
    """For a script that scores another set of renders: its cache folder ``bench/results/<cache>``, the model
    file, a warm engine (with MediaPipe's blendshape model from ../shared when there; ``fit``: FitSettings fields
    to replace) and the head model."""
    global CACHE
    CACHE = RESULTS / cache
    CACHE.mkdir(parents=True, exist_ok=True)
    model_file = model_path(None)
    use_shared_blendshape_model()
    engine = Engine()
    if fit:
        engine.settings = dataclasses.replace(engine.settings, **fit)
    return model_file, engine, engine.model(model_file)[0]


def git_state() -> str:
    """The checkout the figures come from: short commit, ``-dirty`` with local changes."""
    return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()


def face_centre(model: HeadModel) -> np.ndarray:
    """Centre (m, head frame) of the 68 landmark vertices of the mean face: where the camera aims."""
    return model.neutral[model.landmarks_68].mean(0)


def skin_bundle(engine: Engine, model: str | None, source: Path) -> Path:
    """The real reconstruction of ``source`` whose textures dress the renders (made once, then reused)."""
    bundle = CACHE / f"skin_{source.stem}"
    if not bundle.is_dir():
        print(f"reconstructing the skin bundle from {source.name}", flush=True)
        engine.reconstruct(ReconstructRequest([str(source)], str(bundle), SKIN_TEXTURE_SIZE, model, "skin"))
    return bundle


def truth_record(scene: Scene, samples: int, source: Path) -> dict:
    """What ``<scene>.json`` holds: the ground truth and the render settings (JSON-normalised), with the
    eyeballs' rotation (deg) where the scene turns the eyes."""
    render = {"samples": samples, "skin_source": source.name}
    turns = eye_turns(scene)
    if turns:
        render["eye_turns_deg"] = turns
    return json.loads(json.dumps({"scene": scene.as_dict(), "render": render}))


def render_missing(scenes: list[Scene], model: HeadModel, bundle: Path, samples: int, source: Path,
                   rerender: bool) -> None:
    """Render the scenes whose PNG is missing or whose cached ground truth differs (all with ``rerender``)."""
    todo = []
    for scene in scenes:
        png, truth = CACHE / f"{scene.name}.png", CACHE / f"{scene.name}.json"
        record = truth_record(scene, samples, source)
        if rerender or not png.is_file() or not truth.is_file() or json.loads(truth.read_text()) != record:
            todo.append((scene, png, truth, record))
    if not todo:
        return
    from synth_render import Renderer  # imports bpy: only when something is to render

    renderer = Renderer(bundle, model, face_centre(model), samples)
    start = time.perf_counter()
    for k, (scene, png, truth, record) in enumerate(todo, 1):
        png.unlink(missing_ok=True)
        renderer.render(scene, png)
        truth.write_text(json.dumps(record, indent=1))
        took = time.perf_counter() - start
        print(f"rendered {scene.name} ({k}/{len(todo)}, {took / k:.1f} s each, "
              f"{took / k * (len(todo) - k) / 60:.1f} min left)", flush=True)


def analyse(engine: Engine, model: str | None, scene: Scene, refine: bool = False) -> dict:
    """Run the product's analysis on one render: the fit (refined against the render with ``refine``), or why it
    failed, its timing (ms: the MediaPipe stage, then the fit), and MediaPipe's own blendshape scores when the
    engine has the model."""
    marks: dict[str, float] = {}
    # the scene's own lens, as EXIF would tell it (a render has none): the benchmark measures expression and
    # pose, not the product's guess of the focal length for photos without EXIF (focal_scan.py measures that)
    photo = replace(load_photo(CACHE / f"{scene.name}.png"), focal_px=scene.focal_px, focal_source="exif")
    start = time.perf_counter()
    try:
        result, found = engine.analyse([photo], model, lambda stage, *_: marks.setdefault(stage, time.perf_counter()),
                                       refine)
    except LikenessError as exc:
        return {"error": f"{type(exc).__name__}: {exc.message}"}
    end = time.perf_counter()
    fit = result.photos[0]
    out = {"identity": np.asarray(result.identity), "rotation": fit.rotation, "expression": fit.expression,
           "landmarks_px": found[0].points_px[:468], "detect_ms": (marks["fit"] - start) * 1000.0,
           "fit_ms": (end - marks["fit"]) * 1000.0}
    scores = engine.scorer().scores(photo.rgb, found[0].box_px) if engine.scorer() is not None else None
    if scores is not None:  # MediaPipe's own blendshape scores, the baseline the fit should beat
        out["mediapipe"] = np.nan_to_num(to_weights(scores, engine.model(model)[0].expression_names))
    head = engine.model(model)[0]
    if engine.encoder(head) is not None:  # the expression encoder's own weights, before the fit
        obs = engine.observe(head, [Camera(photo.focal_px, photo.principal_point, photo.size)], found[:1], [scores],
                             [photo.rgb])[0]
        out["encoder"] = obs.evidence
    return out


def _project_truth(model: HeadModel, corr: Correspondence, scene: Scene) -> tuple[np.ndarray, np.ndarray, Camera]:
    """The correspondence table's 468 points on the true posed mesh: pixels (468,2), depth (468,) relative to the
    mean in the same pixel scale (as MediaPipe reports it; :func:`likeness.learned.dataset.true_points_px`), and
    the scene's camera."""
    m2c = np.array(scene.model_to_camera)
    width, height = scene.image_size
    camera = Camera(scene.focal_px, (width / 2.0, height / 2.0), scene.image_size)
    px, depth = true_points_px(corr, posed_vertices(model, scene), m2c[:3, :3], m2c[:3, 3], camera)
    return px, depth, camera


def truth_landmarks(model: HeadModel, corr: Correspondence, scene: Scene) -> np.ndarray:
    """Where the correspondence table puts MediaPipe's 468 landmarks on the true mesh, in pixels (468,2)."""
    return _project_truth(model, corr, scene)[0]


def perfect_landmarks(model: HeadModel, corr: Correspondence, scene: Scene) -> Observation:
    """A perfect detector: :func:`truth_landmarks` with the depth relative to the mean in the same pixel scale
    (as MediaPipe reports it)."""
    return Observation(*_project_truth(model, corr, scene))


def oracle_fit(engine: Engine, model: str | None, landmarks: Observation) -> dict:
    """The fit alone (no detector, no learned evidence, no gaze stage) on perfect landmarks: what the fit and
    its priors can recover when the landmarks agree exactly with the correspondence table."""
    result = fit_landmarks(engine.model(model)[1], [landmarks], engine.settings)
    fit = result.photos[0]
    return {"identity": np.asarray(result.identity), "rotation": fit.rotation, "expression": fit.expression}


def score(model: HeadModel, scenes: list[Scene],
          fits: list[dict]) -> tuple[dict, list[np.ndarray], dict[str, np.ndarray]]:
    """Expression metrics, face-region vertex errors (mm, per scene) and pose errors of ``fits[i]`` for
    ``scenes[i]``."""
    names = model.expression_names
    true_w = np.array([s.expression_vector(names) for s in scenes])
    fit_w = np.array([f["expression"] for f in fits])
    expression = metrics.expression_metrics(names, true_w, fit_w)
    vertex = [metrics.face_vertex_errors(model, np.array(s.identity), t, f["identity"], w)
              for s, t, f, w in zip(scenes, true_w, fits, fit_w)]
    pose = metrics.pose_errors(np.array([np.array(s.model_to_camera)[:3, :3] for s in scenes]),
                               np.array([f["rotation"] for f in fits]))
    return expression, vertex, pose


def evaluate(model: HeadModel, scenes: list[Scene], fits: list[dict], oracle: list[dict],
             perfect: list[Observation]) -> dict:
    """All metrics: headline summary, the fit on perfect landmarks and MediaPipe's scores beside it, per shape,
    per category / yaw band, per scene."""
    ok = [i for i, f in enumerate(fits) if "error" not in f]
    if not ok:
        raise SystemExit("No face was found in any render; nothing to score.")
    found, fitted = [scenes[i] for i in ok], [fits[i] for i in ok]
    expression, vertex, pose = score(model, found, fitted)
    rows = [report.scene_row(scene, fit, model.expression_names) for scene, fit in zip(scenes, fits)]
    for j, i in enumerate(ok):
        rows[i].update(on_error=expression["per_scene_on_error"][j], leaked=expression["per_scene_leaked"][j],
                       vertex_median_mm=float(np.median(vertex[j])), vertex_mean_mm=float(vertex[j].mean()),
                       rotation_err_deg=float(pose["rotation"][j]),
                       yaw_err_deg=float(pose["yaw"][j]), pitch_err_deg=float(pose["pitch"][j]),
                       roll_err_deg=float(pose["roll"][j]))  # signed: fit − true
    fit_ms = np.array([f["fit_ms"] for f in fitted])
    headline = metrics.summary(expression, vertex, pose)
    headline.update(scenes=len(scenes), detected=len(ok), fit_ms_mean=float(fit_ms.mean()),
                    fit_ms_median=float(np.median(fit_ms)),
                    detect_ms_mean=float(np.mean([f["detect_ms"] for f in fitted])),
                    auc_shapes=expression["auc_shapes"], side_cases=expression["side_cases"])
    ideal = score(model, scenes, oracle)
    baseline = None
    if all("mediapipe" in f for f in fitted):
        names = model.expression_names
        baseline = metrics.expression_metrics(names, np.array([s.expression_vector(names) for s in found]),
                                              np.array([f["mediapipe"] for f in fitted]))
    alone = None
    if all("encoder" in f for f in fitted):
        names = model.expression_names
        alone = metrics.expression_metrics(names, np.array([s.expression_vector(names) for s in found]),
                                           np.array([f["encoder"] for f in fitted]))
    return {"summary": headline, "met": {k: metrics.met(k, v) for k, v in headline.items() if k in metrics.TARGETS},
            "encoder_alone": alone and {k: v for k, v in alone.items() if not k.startswith("per_scene")},
            "perfect_landmarks": {**metrics.summary(*ideal),
                                  "auc": {n: p["auc"] for n, p in ideal[0]["per_shape"].items()}},
            "mediapipe_scores": baseline and {k: v for k, v in baseline.items() if not k.startswith("per_scene")},
            "landmarks_vs_truth": metrics.landmark_consistency(np.array([perfect[i].points_px for i in ok]),
                                                               np.array([f["landmarks_px"] for f in fitted])),
            "per_shape": expression["per_shape"], "by_category": report.groups(rows, "category"),
            "by_yaw": report.groups(rows, "yaw_band"), "failures": [r for r in rows if not r["detected"]],
            "scenes": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 scenes instead of 150 (a subset of them)")
    parser.add_argument("--rerender", action="store_true", help="render again even where cached renders exist")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument("--model", help="ICT model .npz (default: ../shared, $LIKENESS_ICT_MODEL, installed)")
    parser.add_argument("--source", type=Path, default=SKIN_SOURCE, help="dev photo the skin texture comes from")
    parser.add_argument("--no-blendshapes", action="store_true",
                        help="fit without MediaPipe's blendshape scores (to measure what they add)")
    parser.add_argument("--refine", action="store_true",
                        help="refine each fit against its render (likeness.capture.refine); fit time then includes it")
    parser.add_argument("--fit", action="append", default=[], metavar="FIELD=VALUE",
                        help="a fit setting (FitSettings field, a number) for this run only: _fit_FIELD-VALUE files")
    args = parser.parse_args()
    from photo_fits import fit_settings, fit_suffix

    fit = fit_settings(args.fit)

    start = time.perf_counter()
    model_file = model_path(args.model)
    use_shared_blendshape_model()
    engine = Engine(use_blendshapes=not args.no_blendshapes)
    if fit:  # before the model loads (its landmark basis is built with the settings)
        engine.settings = dataclasses.replace(engine.settings, **fit)
    model, _ = engine.model(model_file)
    scenes = make_scenes(model.expression_names, face_centre(model), quick=args.quick)
    CACHE.mkdir(parents=True, exist_ok=True)
    bundle = skin_bundle(engine, model_file, args.source)
    render_missing(scenes, model, bundle, args.samples, args.source, args.rerender)
    rendered = time.perf_counter()

    analyse(engine, model_file, scenes[0], args.refine)  # warm-up: detector, scorer, caches load outside the timings
    fits = []
    for scene in scenes:
        fits.append(analyse(engine, model_file, scene, args.refine))
        if "error" in fits[-1]:
            print(f"{scene.name}: {fits[-1]['error']}", flush=True)
    corr = load_table()
    perfect = [perfect_landmarks(model, corr, scene) for scene in scenes]
    oracle = [oracle_fit(engine, model_file, landmarks) for landmarks in perfect]
    results = evaluate(model, scenes, fits, oracle, perfect)
    results["run"] = {"commit": git_state(), "quick": args.quick, "samples": args.samples,
                      "skin_source": args.source.name,
                      "blendshapes": engine.scorer() is not None, "refine": args.refine,
                      "encoder": None if engine.encoder(model) is None else str(engine.encoder(model).path),
                      "render_s": round(rendered - start, 1), "analyse_s": round(time.perf_counter() - rendered, 1)}
    suffix = ("_no_blendshapes" if args.no_blendshapes else "") + ("_refine" if args.refine else "") + (
        fit_suffix(fit) + ("_encoder" if engine.encoder(model) is not None else ""))
    write_report("synthetic", suffix, results)


def write_report(name: str, suffix: str, results: dict) -> None:
    """Print the tables and write ``<name>_metrics<suffix>.json`` and ``<name>_tables<suffix>.md``."""
    metrics_file, tables_file = RESULTS / f"{name}_metrics{suffix}.json", RESULTS / f"{name}_tables{suffix}.md"
    metrics_file.write_text(json.dumps(results, indent=1))
    tables = report.markdown(results)
    tables_file.write_text(tables)
    print(tables)
    print(f"wrote {metrics_file} and {tables_file}")


if __name__ == "__main__":
    main()
