"""Where the expression error lives: how far each shape that is on moves the face, and how much of that motion
another identity would explain, against what each reader gets wrong there.

Usage: .venv/bin/python bench/quality/expression_ceiling.py     # → bench/results/expression_ceiling.json

On the tuning renders (``tune_fit.py``'s set, all 150 scenes; never the benchmark's or the held-out ones), for each
case of a shape that is on (a scene and one of its shapes with true weight > 0):

- *motion*: how far the shape moves MediaPipe's 468 points in the render (px, the largest over the points),
  from the scene's true expression to the same expression without that shape;
- *beyond identity*: the same motion less what another identity and a small head motion explain (least squares on
  the fit's 60 identity modes, a ridge of 1 px² per unit coefficient, and the 6 rigid modes, linearised at the
  true head; px, the largest over the points): what a reader that does not know the person's neutral face can see
  of that shape in the points;
- *beyond identity and the other shapes*: the same, with the model's other 52 expression shapes also free (linear,
  either sign): what is left of the shape's motion that no other combination of shapes could make;
- the error on that shape of the fit (the product), the encoder alone, MediaPipe's scores and the fit on perfect
  landmarks (the true points, ``synthetic.oracle_fit``).

And the fit on perfect landmarks again, with independent Gaussian noise on every coordinate (points and depth) of
0.5–5.6 % of the inter-ocular distance (a fixed seed): how precise the points must be for the fit alone to meet
issue 11's targets; and with MediaPipe's own error on each render (its points and depth less the true ones) scaled by
0–1: how much closer than MediaPipe a detector with errors of the same kind would have to be.

MediaPipe's points scatter about 5.6 % of the inter-ocular distance around the true ones on our training renders
(docs/encoder.md, "MediaPipe's correlated scatter as the fit's noise model"), about 5–6 px at these renders' ~100 px
between the eyes; the part of that scatter that is neither rigid nor shaped like an identity is about 2 %. The
figures and what they mean: docs/quality.md, section 1c.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1] / "scripts"), str(HERE)]

import numpy as np  # noqa: E402
import synth_metrics as metrics  # noqa: E402
import synth_scenes  # noqa: E402
import synthetic as bench  # noqa: E402
from tune_fit import _Once  # noqa: E402

from likeness.capture.images import load_photo  # noqa: E402
from likeness.errors import LikenessError  # noqa: E402
from likeness.model.camera import Camera  # noqa: E402
from likeness.model.correspondence import load_table  # noqa: E402

IDENTITY_MODES = 60  # as many as the fit estimates
RIDGE = 1.0  # px² per unit identity coefficient (scene identities ~ N(0, 0.8²)): nearly unregularised
BINS = (0.0, 1.0, 2.0, 3.0, 5.0, np.inf)  # px, for the tables
READERS = ("fit", "encoder", "mediapipe", "perfect_landmarks")
NOISE = (0.0, 0.005, 0.01, 0.02, 0.03, 0.056)  # × the inter-ocular distance, per coordinate
NOISE_SEED = 5
MEDIAPIPE_SCALES = (0.0, 0.1, 0.25, 0.5, 1.0)  # × MediaPipe's own error on each render


def _skew(v: np.ndarray) -> np.ndarray:
    """(N,3) vectors → (N,3,3) matrices of ``v ×``."""
    z = np.zeros(len(v))
    return np.stack([np.stack([z, -v[:, 2], v[:, 1]], -1), np.stack([v[:, 2], z, -v[:, 0]], -1),
                     np.stack([-v[:, 1], v[:, 0], z], -1)], 1)


def point_jacobian(points: np.ndarray, modes: np.ndarray, rotation: np.ndarray,
                   translation: np.ndarray, camera: Camera) -> np.ndarray:
    """d(pixels of the points)/d(mode coefficients, head rotation, head translation): (468·2, K + 6).

    ``points`` (468,3) and ``modes`` (K,468,3; identity or expression shapes, m per unit) in the head frame (m);
    the rotation is a small turn about the camera's origin (radians, camera axes), the translation in metres
    (camera axes)."""
    q = points @ rotation.T + translation
    proj = camera.projection_jacobian(q)  # (468,2,3)
    d_id = np.einsum("lij,klj->lik", proj, modes @ rotation.T)  # (468,2,K)
    d_rot = -np.einsum("lij,ljk->lik", proj, _skew(q - translation))  # δq = ω × (R p)
    d_move = proj  # δq = δt
    return np.concatenate([d_id, d_rot, d_move], 2).reshape(len(points) * 2, -1)


def beyond(motion: np.ndarray, jacobian: np.ndarray, ridged: int) -> np.ndarray:
    """(468,2) px motion less its least-squares fit by the Jacobian's columns, the first ``ridged`` (the identity
    modes) with a ridge of :data:`RIDGE`."""
    ridge = np.r_[np.full(ridged, RIDGE), np.zeros(jacobian.shape[1] - ridged)]
    coef = np.linalg.solve(jacobian.T @ jacobian + np.diag(ridge), jacobian.T @ motion.ravel())
    return (motion.ravel() - jacobian @ coef).reshape(-1, 2)


def _iod(points_px: np.ndarray) -> float:
    """The distance between the outer eye corners (MediaPipe's points 33 and 263), px."""
    return float(np.linalg.norm(points_px[33] - points_px[263]))


def _refit(engine, model_file, names, scenes, observations) -> dict:
    """The headline expression figures of the fit alone (``synthetic.oracle_fit``) on ``observations[i]`` of
    ``scenes[i]``."""
    read = [bench.oracle_fit(engine, model_file, obs)["expression"] for obs in observations]
    m = metrics.expression_metrics(names, np.array([scene.expression_vector(names) for scene in scenes]),
                                   np.array(read))
    return {k: m[k] for k in metrics.HEADLINE if k in m}


def cases(engine, model_file, model, scenes, perfect) -> list[dict]:
    """One row per shape that is on in each scene whose face was found; ``perfect[i]``: ``scenes[i]``'s perfect
    landmarks."""
    corr, names = load_table(), model.expression_names
    modes = np.concatenate([corr.basis(model.identity_basis[:IDENTITY_MODES].astype(np.float64)),
                            corr.basis(model.expression_basis.astype(np.float64))])
    shape_columns = np.arange(IDENTITY_MODES, IDENTITY_MODES + len(names))
    rows = []
    for scene, truth in zip(scenes, perfect):
        fit = bench.analyse(engine, model_file, scene)
        if "error" in fit:
            continue
        oracle = bench.oracle_fit(engine, model_file, truth)
        m2c = np.array(scene.model_to_camera)
        width, height = scene.image_size
        camera = Camera(scene.focal_px, (width / 2.0, height / 2.0), scene.image_size)
        # columns: the identity modes, the expression shapes, the head's turn and shift
        jac = point_jacobian(corr.points(bench.posed_vertices(model, scene)), modes, m2c[:3, :3], m2c[:3, 3], camera)
        px = truth.points_px
        for name, weight in scene.expression.items():
            if weight <= 0:
                continue
            e = names.index(name)
            without = dataclasses.replace(scene, expression={k: v for k, v in scene.expression.items() if k != name})
            motion = px - bench.truth_landmarks(model, corr, without)
            rest = beyond(motion, np.delete(jac, shape_columns, 1), IDENTITY_MODES)
            rest_all = beyond(motion, np.delete(jac, IDENTITY_MODES + e, 1), IDENTITY_MODES)
            read = {"fit": fit["expression"][e], "encoder": fit.get("encoder", [np.nan] * len(names))[e],
                    "mediapipe": fit.get("mediapipe", [np.nan] * len(names))[e],
                    "perfect_landmarks": oracle["expression"][e]}
            rows.append({"scene": scene.name, "shape": name, "true": float(weight), "iod_px": _iod(px),
                         "motion_px": float(np.linalg.norm(motion, axis=1).max()),
                         "beyond_identity_px": float(np.linalg.norm(rest, axis=1).max()),
                         "beyond_identity_and_shapes_px": float(np.linalg.norm(rest_all, axis=1).max()),
                         **{k: float(v) for k, v in read.items()}})
    return rows


def noise_curve(engine, model_file, model, scenes, perfect, levels=NOISE) -> list[dict]:
    """The headline expression figures of the fit on the scenes' ``perfect`` landmarks with independent Gaussian
    noise of each level (× the inter-ocular distance) on every coordinate, points and depth."""
    out = []
    for level in levels:
        rng = np.random.default_rng(NOISE_SEED)
        noisy = []
        for obs in perfect:
            sigma = level * _iod(obs.points_px)
            noisy.append(dataclasses.replace(obs, points_px=obs.points_px + rng.normal(0, sigma, obs.points_px.shape),
                                             depth_px=obs.depth_px + rng.normal(0, sigma, obs.depth_px.shape)))
        out.append({"noise_iod": level, **_refit(engine, model_file, model.expression_names, scenes, noisy)})
    return out


def mediapipe_curve(engine, model_file, model, scenes, perfect, scales=MEDIAPIPE_SCALES) -> dict:
    """The headline expression figures of the fit on the scenes' ``perfect`` landmarks plus each ``scale`` ×
    MediaPipe's own error on that render (points and depth), and that error's size (RMS per coordinate, × the
    inter-ocular distance)."""
    found = []
    for scene, truth in zip(scenes, perfect):
        try:
            photo = load_photo(bench.CACHE / f"{scene.name}.png")
            face = engine.detector().detect(photo.rgb, photo.path.name)  # the same call as the fit's (cached)
        except LikenessError:
            continue
        found.append((scene, truth, face.points_px[:468] - truth.points_px, face.depth_px[:468] - truth.depth_px))
    curve = []
    for scale in scales:
        moved = [dataclasses.replace(truth, points_px=truth.points_px + scale * err,
                                     depth_px=truth.depth_px + scale * derr) for _, truth, err, derr in found]
        curve.append({"scale": scale, **_refit(engine, model_file, model.expression_names,
                                              [scene for scene, *_ in found], moved)})
    return {"error_iod": float(np.mean([np.sqrt((e ** 2).mean()) / _iod(t.points_px) for _, t, e, _ in found])),
            "depth_error_iod": float(np.mean([np.sqrt((d ** 2).mean()) / _iod(t.points_px) for _, t, _, d in found])),
            "curve": curve}


def table(rows: list[dict], key: str) -> list[dict]:
    """Mean error of each reader per band of ``key`` (px)."""
    value = np.array([r[key] for r in rows])
    true = np.array([r["true"] for r in rows])
    out = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (value >= lo) & (value < hi)
        if m.any():
            out.append({"from_px": lo, "to_px": None if np.isinf(hi) else hi, "cases": int(m.sum()),
                        **{r: float(np.nanmean(np.abs(np.array([x[r] for x in rows])[m] - true[m])))
                           for r in READERS}})
    return out


def main() -> None:
    model_file, engine, model = bench.setup("tuning")
    scenes = bench.make_scenes(model.expression_names, bench.face_centre(model), seed=synth_scenes.SEED + 7)
    bench.render_missing(scenes, model, bench.skin_bundle(engine, model_file, bench.SKIN_SOURCE), 16,
                         bench.SKIN_SOURCE, False)
    engine._detector = _Once(engine.detector(), "detect")
    if engine.scorer() is not None:
        engine._scorer = _Once(engine.scorer(), "scores")
    corr = load_table()
    perfect = [bench.perfect_landmarks(model, corr, scene) for scene in scenes]
    rows = cases(engine, model_file, model, scenes, perfect)
    result = {"cases": rows, "by_motion": table(rows, "motion_px"),
              "by_beyond_identity": table(rows, "beyond_identity_px"),
              "by_beyond_identity_and_shapes": table(rows, "beyond_identity_and_shapes_px")}
    result["perfect_landmarks_with_noise"] = noise_curve(engine, model_file, model, scenes, perfect)
    result["perfect_landmarks_with_mediapipe_error"] = mediapipe_curve(engine, model_file, model, scenes, perfect)
    out = HERE.parents[1] / "bench" / "results" / "expression_ceiling.json"
    out.write_text(json.dumps(result, indent=1))
    iod = np.median([r["iod_px"] for r in rows])
    print(f"{len(rows)} cases of a shape that is on, {len(scenes)} scenes; median {iod:.0f} px between the eyes")
    for key, title in (("by_motion", "motion"), ("by_beyond_identity", "beyond identity"),
                       ("by_beyond_identity_and_shapes", "beyond identity and the other shapes")):
        print(f"\non-shape error by {title} (px): " + " / ".join(READERS))
        for b in result[key]:
            top = "" if b["to_px"] is None else format(b["to_px"], "g")
            band = f"{b['from_px']:g}–{top}"
            print(f"  {band:>6} px  {b['cases']:4d} cases  " + " / ".join(f"{b[r]:.3f}" for r in READERS))
    print("\nthe fit on perfect landmarks with noise (× the inter-ocular distance, per coordinate):")
    for row in result["perfect_landmarks_with_noise"]:
        print(f"  {row['noise_iod'] * 100:4.1f} %  " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                          if k != "noise_iod"))
    mp = result["perfect_landmarks_with_mediapipe_error"]
    print(f"\nthe fit on perfect landmarks plus MediaPipe's own error (RMS {mp['error_iod'] * 100:.1f} % of the "
          f"inter-ocular distance a coordinate, depth {mp['depth_error_iod'] * 100:.1f} %), scaled:")
    for row in mp["curve"]:
        print(f"  × {row['scale']:4.2f}  " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "scale"))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
