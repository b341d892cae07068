"""How much of a head's identity do MediaPipe's landmarks carry? (issue 13: a lead for the identity geometry)

Usage: .venv/bin/python bench/quality/identity_from_landmarks.py [--data out/encoder_data] [--shards 64]
About 5 minutes on 2 cores. Reads the expression encoder's training renders (``likeness.learned.dataset``, version 2
shards: the NumPy renderer, procedural *train* skins, scenes from ``DATA_SEED``; never a benchmark's scenes, skins
or any photo; ``python -m likeness.learned.train --data-version 2 --shards 64`` makes them), whose identities are
known: each scene is drawn again from its seed. Every render is fitted as the product fits a photo (the landmark
fit with MediaPipe's blendshape scores, default settings; the fits are cached in
``bench/results/identity_fits/``). On the last quarter of the shards (the first three quarters fit the estimators)
it reports the face-region neutral-shape error (mean vertex distance per face, mm, median over faces) of:

- the ICT mean head (identity 0);
- the fit's identity as it is;
- the best linear estimate of the identity from the fit's identity and expression (ridge regression);
- the best linear estimate from the landmarks themselves (MediaPipe's 478 aligned points with depth, the encoder's
  landmark features), i.e. what any linear identity regressor on landmarks could reach;

with the share of each identity coefficient's variance they explain (R²), and the fit's correlation with the
truth per coefficient. Writes ``bench/results/identity_from_landmarks.json`` (docs/quality.md section 6).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]
from photo_fits import RESULTS, model_path, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
IDENTITIES = 60  # the training scenes' identity coefficients (and the fit's)
VERTEX_STEP = 7  # every 7th face-region vertex measures the shape error (about 1300 vertices)


def fit_shard(data: str, index: int) -> str:
    """Fit one shard's renders; returns the cached fits' path. Runs in a worker process."""
    from likeness.capture.blendshapes import to_weights
    from likeness.capture.fit import FitSettings, LandmarkBasis, Observation, fit_landmarks
    from likeness.learned.dataset import shard_path
    from likeness.learned.features import ARKIT_52
    from likeness.learned.scenes import draw_scene
    from likeness.learned.skins import skin_seeds
    from likeness.learned.trainset import DATA_SEED, SKINS
    from likeness.model.correspondence import load_table
    from likeness.model.headmodel import load_ict

    out = RESULTS / "identity_fits" / f"fit_v2_{index:04d}.npz"
    if out.exists():
        return str(out)
    model = load_ict(model_path())
    settings = FitSettings()
    basis = LandmarkBasis.build(model, load_table(), settings)
    centre = model.neutral[model.landmarks_68].mean(0)
    skins = skin_seeds(SKINS, "train")
    shard = np.load(shard_path(Path(data), "train", index, 2))
    rows: dict[str, list] = {k: [] for k in ("true_identity", "identity", "expression", "found")}
    for i in range(len(shard["found"])):
        scene = draw_scene(model.expression_names, IDENTITIES, centre, skins,
                           np.random.default_rng([DATA_SEED, index, i]))
        if not np.allclose(scene.expression, shard["expression"][i], atol=1e-5):
            raise SystemExit(f"shard {index} was not made from DATA_SEED {DATA_SEED}: its scenes do not match")
        rows["true_identity"].append(scene.identity)
        found = shard["found"][i] > 0
        rows["found"].append(float(found))
        if not found:
            rows["identity"].append(np.zeros(IDENTITIES))
            rows["expression"].append(np.zeros(len(model.expression_names)))
            continue
        scores = shard["scores"][i]
        evidence = to_weights(dict(zip(ARKIT_52, scores[:-1])), model.expression_names) if scores[-1] > 0 else None
        obs = Observation(shard["points_px"][i].astype(np.float64), shard["depth_px"][i].astype(np.float64),
                          scene.camera, evidence)
        result = fit_landmarks(basis, [obs], settings)
        rows["identity"].append(result.identity)
        rows["expression"].append(result.photos[0].expression)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.npz")
    np.savez(tmp, **{k: np.asarray(v, np.float64) for k, v in rows.items()})
    tmp.replace(out)
    return str(out)


def landmark_features(data: Path, index: int, found: np.ndarray, template: np.ndarray | None):
    """The encoder's landmark features (478 aligned points with depth, minus the template) of one shard's faces."""
    from likeness.learned.dataset import shard_path
    from likeness.learned.features import LANDMARKS, encoder_features, landmarks_3d, mean_template

    shard = np.load(shard_path(data, "train", index, 2))
    points, depth, scores = (shard[k][found] for k in ("points_px", "depth_px", "scores"))
    if template is None:
        template = mean_template(np.stack([landmarks_3d(p, d) for p, d in zip(points, depth)]).astype(np.float64))
    feats = np.stack([encoder_features(p, d, s, template)[:LANDMARKS * 3] for p, d, s in zip(points, depth, scores)])
    return feats.astype(np.float64), template


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised ridge regression y ≈ (x − mean)/std · W + b; returns (mean, std, W, b)."""
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y.mean(0)))
    return mean, std, w, y.mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO / "out" / "encoder_data", help="the encoder's render cache")
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from likeness.learned.dataset import shard_path
    from likeness.model.headmodel import load_ict

    missing = [i for i in range(args.shards) if not shard_path(args.data, "train", i, 2).is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} training shards are missing in {args.data}: make them with "
                         f"`python -m likeness.learned.train --data {args.data} --data-version 2 "
                         f"--shards {args.shards}`")
    with ProcessPoolExecutor(args.workers) as pool:
        paths = list(pool.map(fit_shard, [str(args.data)] * args.shards, range(args.shards)))
    fits = [np.load(p) for p in paths]
    found = [f["found"] > 0 for f in fits]
    cat = {k: np.concatenate([f[k][m] for f, m in zip(fits, found)]) for k in ("true_identity", "identity",
                                                                           "expression")}
    shard = np.concatenate([np.full(m.sum(), i) for i, m in enumerate(found)])
    template, feats = None, []
    for i, m in enumerate(found):
        f, template = landmark_features(args.data, i, m, template)
        feats.append(f)
    marks = np.concatenate(feats)
    train, test = shard < args.shards * 3 // 4, shard >= args.shards * 3 // 4

    model = load_ict(model_path())
    face = slice(0, model.face_vertex_count, VERTEX_STEP)
    basis = model.identity_basis[:IDENTITIES, face].astype(np.float64).reshape(IDENTITIES, -1)
    truth = cat["true_identity"]

    def shape_error(pred: np.ndarray) -> float:
        diff = ((pred - truth[test]) @ basis).reshape(len(pred), -1, 3)
        return float(np.median(np.linalg.norm(diff, axis=-1).mean(1)) * 1000.0)

    def r2(pred: np.ndarray) -> np.ndarray:
        return 1.0 - ((pred - truth[test]) ** 2).mean(0) / truth[test].var(0)

    fitted = cat["identity"]
    rows = {"mean head": np.zeros_like(truth[test]), "fit as it is": fitted[test]}
    inputs = {"linear, from the fit's identity and expression": np.concatenate([fitted, cat["expression"]], 1),
              "linear, from the landmarks": marks}
    inner = shard[train] < args.shards // 2  # the ridge's strength is chosen on this split of the training shards

    def held_out_error(x: np.ndarray, lam: float) -> float:
        mu, sd, w, b = ridge(x[train][inner], truth[train][inner], lam)
        return float(np.mean((((x[train][~inner] - mu) / sd) @ w + b - truth[train][~inner]) ** 2))

    for name, x in inputs.items():
        lam = min((10.0, 100.0, 1000.0, 10000.0), key=lambda value: held_out_error(x, value))
        mu, sd, w, b = ridge(x[train], truth[train], lam)
        rows[f"{name} (ridge {lam:g})"] = ((x[test] - mu) / sd) @ w + b
    result = {"faces": {"fitting the estimators": int(train.sum()), "scored": int(test.sum())},
              "rows": {name: {"shape_error_mm": shape_error(p), "r2_mean": float(r2(p).mean()),
                              "r2_first_10": np.round(r2(p)[:10], 3).tolist()} for name, p in rows.items()},
              "fit_truth_correlation_first_10": [float(np.corrcoef(fitted[test][:, k], truth[test][:, k])[0, 1])
                                                 for k in range(10)]}
    for name, row in result["rows"].items():
        print(f"{name:62s} {row['shape_error_mm']:.2f} mm  R² {row['r2_mean']:+.3f}  "
              f"first modes {row['r2_first_10'][:5]}")
    print("fit vs truth, correlation of the first 10 coefficients:",
          np.round(result["fit_truth_correlation_first_10"], 2).tolist())
    path = write_results("identity_from_landmarks", result, {"shards": args.shards, "data": str(args.data)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
