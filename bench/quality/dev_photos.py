"""Dev-photo quality (docs/quality.md, section 2): smile vs neutral, identity consistency, landmark NME.

Usage: .venv/bin/python bench/quality/dev_photos.py [--no-blendshapes] [--refine] [--fit FIELD=VALUE ...]
       LIKENESS_EXPRESSION_ENCODER=off .venv/bin/python bench/quality/dev_photos.py  # the landmark fit alone
Fits each of the 65 photos in ../shared/data/faces_dev alone (as a user with one photo would), prints the tables
and writes bench/results/dev_photos_encoder.json with the product's default (the expression encoder where torch is
installed), dev_photos.json without it (dev_photos_no_blendshapes.json without MediaPipe's blendshape evidence,
dev_photos_refine.json with the refinement against the photos).
About 30 s on 2 CPU cores.

- Smile: mouthSmile_L + mouthSmile_R on the 20 London neutral/smile pairs; MediaPipe's own scores as reference.
- Identity: distances between the photos' identities, as the 60 coefficients (Euclidean) and as the neutral face
  region (RMS vertex distance in mm after similarity alignment); same-person vs different-person pairs.
- Landmarks: the model's projected iBUG-68 points (the bundle's ``landmarks_68_px``) against the manual template
  points of the features in :mod:`frl_landmarks`, as NME (mean error / outer-eye distance of the manual points).
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations

import numpy as np

import frl_landmarks as frl
from likeness.model.geometry import similarity_transform
from likeness.model.headmodel import HeadModel
from likeness.capture.images import load_photo
from photo_fits import SHARED, Fitter, MediaPipeScores, SingleFit, fit_settings, fit_suffix, table, write_results

DEV = SHARED / "data" / "faces_dev"
SMILE = ("mouthSmile_L", "mouthSmile_R")
MP_SMILE = ("mouthSmileLeft", "mouthSmileRight")
#: MediaPipe smile score (L + R) below which a photo labelled "smile" shows no visible smile (label check)
VISIBLE_SMILE = 0.1
NME_TARGET = 0.03
PAIR_TARGET = 0.95


def load_items() -> list[dict]:
    """The manifest's items (file, identity, labels, template landmarks)."""
    return json.loads((DEV / "manifest.json").read_text())["items"]


def fit_all(items: list[dict], fitter: Fitter) -> tuple[list[SingleFit], list[dict[str, float]]]:
    """Fit every photo alone; also MediaPipe's blendshape scores of each."""
    scorer = MediaPipeScores()
    fitter.fit(load_photo(DEV / items[0]["file"]))  # warm-up (TFLite delegates, caches)
    fits, scores = [], []
    for item in items:
        photo = load_photo(DEV / item["file"])
        fits.append(fitter.fit(photo))
        scores.append(scorer.scores(photo.rgb))
    return fits, scores


def _score_separation(neutral: np.ndarray, smile: np.ndarray) -> dict:
    """Separation of paired scores (one neutral and one smile per person)."""
    margin = smile - neutral
    return {"min_smile": float(smile.min()), "max_neutral": float(neutral.max()),
            "separated": bool(smile.min() > neutral.max()), "gap": float(smile.min() - neutral.max()),
            "pairs_ordered": float((margin > 0).mean()),
            "auc": float((smile[:, None] > neutral[None]).mean()),
            "margin": margin}


def smile_separation(items: list[dict], fits: list[SingleFit], scores: list[dict[str, float]],
                     names: tuple[str, ...]) -> dict:
    """mouthSmile_L + _R on the London neutral/smile pairs, for the fit and for MediaPipe's scores."""
    cols = [names.index(n) for n in SMILE]
    people = sorted({it["identity"] for it in items if it["source"] == "frl_london"})
    index = {(it["identity"], it["labels"]["expression"]): i for i, it in enumerate(items)}
    pairs = np.array([[index[(p, "neutral")], index[(p, "smile")]] for p in people])
    fit_score = np.array([f.expression[cols].sum() for f in fits])
    mp_score = np.array([sum(s.get(n, np.nan) for n in MP_SMILE) for s in scores])
    visible = mp_score[pairs[:, 1]] >= VISIBLE_SMILE
    return {"people": people, "no_visible_smile": [p for p, v in zip(people, visible) if not v],
            "fit_visible_only": _score_separation(fit_score[pairs[visible, 0]], fit_score[pairs[visible, 1]]),
            "fit": {**_score_separation(fit_score[pairs[:, 0]], fit_score[pairs[:, 1]]),
                    "neutral": fit_score[pairs[:, 0]], "smile": fit_score[pairs[:, 1]]},
            "mediapipe": {**_score_separation(mp_score[pairs[:, 0]], mp_score[pairs[:, 1]]),
                          "neutral": mp_score[pairs[:, 0]], "smile": mp_score[pairs[:, 1]]}}


def expression_profile(items: list[dict], fits: list[SingleFit], names: tuple[str, ...], label: str,
                       top: int = 10) -> dict:
    """Which shapes fire on photos labelled ``label``: mean weight of the top shapes, per-photo weight sum."""
    weights = np.array([f.expression for f, it in zip(fits, items) if it["labels"].get("expression") == label])
    mean = weights.mean(0)
    order = np.argsort(-mean)[:top]
    return {"photos": len(weights), "sum_mean": float(weights.sum(1).mean()), "sum_max": float(weights.sum(1).max()),
            "top": {names[i]: {"mean": float(mean[i]), "max": float(weights[:, i].max()),
                               "photos_over_0.1": int((weights[:, i] > 0.1).sum())} for i in order}}


def face_shapes(model: HeadModel, identities: np.ndarray) -> np.ndarray:
    """Neutral face-region vertices (N,V,3) in metres for identity vectors (N,K)."""
    v, k = model.face_vertex_count, identities.shape[1]
    return model.neutral[:v].astype(np.float64) + np.tensordot(identities, model.identity_basis[:k, :v], axes=1)


def shape_distances(shapes: np.ndarray) -> np.ndarray:
    """(N,N) RMS vertex distance in mm after aligning shape i onto shape j with a similarity (Umeyama)."""
    n = len(shapes)
    dist = np.zeros((n, n))
    for i, j in combinations(range(n), 2):
        s, rot, t = similarity_transform(shapes[i], shapes[j])
        dist[i, j] = dist[j, i] = 1000 * np.sqrt(((s * shapes[i] @ rot.T + t - shapes[j]) ** 2).sum(1).mean())
    return dist


def pair_separation(dist: np.ndarray, labels: np.ndarray, subset: np.ndarray | None = None) -> dict:
    """How well distances separate same-person from different-person pairs.

    - ``shared_photo``: over every (same-person pair (a,b), different-person pair (a,x) or (b,x)) combination,
      the fraction where the same-person distance is smaller (the headline figure, target ≥ 95 %);
    - ``strict``: the fraction of same-person pairs closer than *every* different-person pair sharing a photo;
    - ``auc``: P(d_same < d_diff) over all same × different pair combinations.
    ``subset`` (N,) restricts the same-person pairs (e.g. to one source); different pairs range over all photos.
    """
    i, j = np.triu_indices(len(labels), 1)
    same = labels[i] == labels[j]
    keep = same & (subset[i] if subset is not None else True)
    a, b = i[keep], j[keep]
    other = labels[None, :] != labels[:, None]  # (N,N) different person
    d_same = dist[a, b][:, None]
    wins = np.where(other[a], dist[a] > d_same, 0).sum(1) + np.where(other[b], dist[b] > d_same, 0).sum(1)
    total = other[a].sum(1) + other[b].sum(1)
    d_diff = dist[i[~same], j[~same]]
    return {"same_pairs": int(keep.sum()), "shared_photo": float(wins.sum() / total.sum()),
            "strict": float((wins == total).mean()),
            "auc": float((dist[a, b][:, None] < d_diff[None]).mean()),
            "median_same": float(np.median(dist[a, b])), "median_diff": float(np.median(d_diff))}


def identity_consistency(items: list[dict], fits: list[SingleFit], model: HeadModel) -> dict:
    """Same-person vs different-person identity distances, overall and per source of the same-person pairs."""
    labels = np.array([it["identity"] for it in items])
    groups = np.array([it["identity"].split("_")[0] for it in items])
    identities = np.array([f.identity for f in fits])
    metrics = {"coefficients": np.linalg.norm(identities[:, None] - identities[None], axis=-1),
               "face_mm": shape_distances(face_shapes(model, identities))}
    out = {}
    for name, dist in metrics.items():
        out[name] = {"all": pair_separation(dist, labels)}
        for group in np.unique(groups[[(labels == label).sum() > 1 for label in labels]]):
            out[name][group] = pair_separation(dist, labels, groups == group)
    out["london_pairs"] = {name: {p: float(dist[np.flatnonzero(labels == p)[0], np.flatnonzero(labels == p)[1]])
                                  for p in np.unique(labels) if p.startswith("london")}
                           for name, dist in metrics.items()}
    return out


def smile_identity_correlation(smile: dict, london_pairs: dict[str, dict[str, float]]) -> dict[str, float]:
    """Correlation over the London people between how much the smile photo smiles (MediaPipe's score, independent
    of the fit) and the distance between the person's two identities: high = expression leaks into identity."""
    intensity = np.asarray(smile["mediapipe"]["smile"])
    return {name: float(np.corrcoef(intensity, [d[p] for p in smile["people"]])[0, 1])
            for name, d in london_pairs.items()}


def landmark_nme(items: list[dict], fits: list[SingleFit]) -> dict:
    """NME of the fit's iBUG-68 points and of MediaPipe's raw points, per template (London = FRL, manual)."""
    out = {}
    for count, (template, _) in frl.TEMPLATES.items():
        rows = [k for k, it in enumerate(items) if len(it.get("landmarks") or []) == count]
        if not rows:
            continue
        truth = np.array([frl.feature_points(items[k]["landmarks"]) for k in rows])
        fit_err = frl.point_errors(np.array([fits[k].landmarks_68_px[frl.IBUG68] for k in rows]), truth)
        mp_err = frl.point_errors(np.array([fits[k].mediapipe_px[frl.MEDIAPIPE] for k in rows]), truth)
        out[template] = {
            "photos": [items[k]["file"] for k in rows],
            "fit_nme": float(fit_err.mean()), "mediapipe_nme": float(mp_err.mean()),
            "fit_per_photo": fit_err.mean(1), "mediapipe_per_photo": mp_err.mean(1),
            "fit_per_feature": dict(zip(frl.NAMES, fit_err.mean(0))),
            "mediapipe_per_feature": dict(zip(frl.NAMES, mp_err.mean(0))),
            "mapping_check": frl.mapping_check(np.array([fits[k].mediapipe_px for k in rows]),
                                               np.array([items[k]["landmarks"] for k in rows]))}
    return out


def report(smile: dict, leaks: dict, smiles: dict, identity: dict, nme: dict, fits: list[SingleFit]) -> None:
    """Print the tables."""
    print("\n(a) Smile vs neutral, London pairs, each photo alone: mouthSmile_L + mouthSmile_R")
    print(table([[src, smile[src]["min_smile"], smile[src]["max_neutral"], "yes" if smile[src]["separated"] else "NO",
                  smile[src]["pairs_ordered"], smile[src]["auc"], float(np.min(smile[src]["margin"]))]
                 for src in ("fit", "mediapipe")],
                ["scores", "min smile", "max neutral", "separated", "pairs ordered", "AUC", "min pair margin"]))
    vis = smile["fit_visible_only"]
    print(f"Smile photos with no visible smile (MediaPipe L+R < {VISIBLE_SMILE}): {smile['no_visible_smile']}; "
          f"without them the fit's min smile {vis['min_smile']:.3f} vs max neutral {vis['max_neutral']:.3f}")
    print(table([[p, smile["fit"]["neutral"][i], smile["fit"]["smile"][i], smile["fit"]["margin"][i],
                  smile["mediapipe"]["margin"][i]] for i, p in enumerate(smile["people"])],
                ["person", "fit neutral", "fit smile", "fit margin", "MediaPipe margin"]))
    for label, prof in (("neutral", leaks), ("smile", smiles)):
        print(f"\nShapes on {prof['photos']} '{label}' photos: weight sum per photo mean {prof['sum_mean']:.2f}, "
              f"max {prof['sum_max']:.2f}")
        print(table([[n, v["mean"], v["max"], v["photos_over_0.1"]] for n, v in prof["top"].items()],
                    ["shape", "mean", "max", "photos > 0.1"]))
    print("\n(b) Identity consistency (each photo alone); headline = shared-photo combinations")
    rows = [[metric, group, s["same_pairs"], s["shared_photo"], s["strict"], s["auc"], s["median_same"],
             s["median_diff"]] for metric in ("coefficients", "face_mm") for group, s in identity[metric].items()]
    print(table(rows, ["distance", "same pairs", "n", "shared-photo", "strict", "AUC", "median same",
                       "median diff"]))
    print("Correlation over London people of smile intensity (MediaPipe) with neutral-smile identity distance: "
          + ", ".join(f"{k} {v:.2f}" for k, v in identity["corr_with_smile"].items()))
    print("\n(c) Landmark NME (fraction of the manual outer-eye distance)")
    print(table([[t, len(v["photos"]), v["fit_nme"], float(np.max(v["fit_per_photo"])), v["mediapipe_nme"]]
                 for t, v in nme.items()], ["template", "photos", "fit NME", "fit worst photo", "MediaPipe NME"]))
    print(table([[f] + [nme[t][k][f] for t in nme for k in ("fit_per_feature", "mediapipe_per_feature")]
                 for f in frl.NAMES], ["feature"] + [f"{t} {k}" for t in nme for k in ("fit", "MP")]))
    lm, ft = np.array([f.landmark_s for f in fits]), np.array([f.fit_s for f in fits])
    print(f"\nTime per photo: MediaPipe {1000 * lm.mean():.0f} ms, fit {1000 * ft.mean():.0f} ms mean "
          f"({1000 * np.median(ft):.0f} ms median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-blendshapes", action="store_true",
                        help="fit without MediaPipe's blendshape scores as expression evidence")
    parser.add_argument("--refine", action="store_true",
                        help="refine each fit against its photo (likeness.capture.refine)")
    parser.add_argument("--fit", action="append", default=[], metavar="FIELD=VALUE",
                        help="a fit setting (likeness.capture.fit.FitSettings field, a number) for this run only: "
                             "dev_photos_fit_<FIELD>-<VALUE>.json")
    args = parser.parse_args()
    fit = fit_settings(args.fit)
    fitter = Fitter(blendshapes=not args.no_blendshapes, refine=args.refine, fit=fit)
    items = load_items()
    fits, scores = fit_all(items, fitter)
    names = fitter.model.expression_names
    smile = smile_separation(items, fits, scores, names)
    leaks = expression_profile(items, fits, names, "neutral")
    smiles = expression_profile(items, fits, names, "smile")
    identity = identity_consistency(items, fits, fitter.model)
    identity["corr_with_smile"] = smile_identity_correlation(smile, identity["london_pairs"])
    nme = landmark_nme(items, fits)
    report(smile, leaks, smiles, identity, nme, fits)
    per_photo = [{"file": it["file"], "identity": it["identity"], "expression_label": it["labels"].get("expression"),
                  "pose_deg": f.angles, "rmse_iod": f.rmse_iod, "landmark_s": f.landmark_s, "fit_s": f.fit_s,
                  "weights_over_0.05": {n: float(w) for n, w in zip(names, f.expression) if w > 0.05}}
                 for it, f in zip(items, fits)]
    path = write_results("dev_photos" + ("_no_blendshapes" if args.no_blendshapes else "")
                         + ("_refine" if args.refine else "")
                         + fit_suffix(fit)
                         + ("_encoder" if fitter.engine.encoder(fitter.model) is not None else ""), {
        "targets": {"smile": "perfectly separated", "identity_shared_photo": PAIR_TARGET, "nme": NME_TARGET},
        "smile": smile, "neutral_shapes": leaks, "smile_shapes": smiles, "identity": identity, "nme": nme,
        "time_s": {"mediapipe_mean": float(np.mean([f.landmark_s for f in fits])),
                   "fit_mean": float(np.mean([f.fit_s for f in fits]))},
        "photos": per_photo}, fitter.settings())
    print(f"\nWrote {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    main()
