"""Accuracy metrics of fitted expressions, geometry and pose against synthetic ground truth.

Expression arrays are (N scenes, E shapes) weights in [0, 1]. Rotations are (N,3,3) head frame → camera frame.
Angles are in degrees, distances in millimetres.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from likeness.model.geometry import head_angles, similarity_transform
from likeness.model.headmodel import HeadModel

#: The figures a quick comparison of fit variants prints (tuning, diagnostics).
HEADLINE = ("on_shape_error", "leaked_mean", "auc_mean", "side_accuracy", "vertex_median_mm", "rotation_mean_deg")
#: Issue 3's synthetic targets: metric key → (comparison, threshold, label).
TARGETS = {
    "on_shape_error": ("<=", 0.15, "on-shape weight error (mean abs. error where true w > 0)"),
    "leaked_mean": ("<=", 1.0, "leaked weight per photo (Σ w on shapes that are off), mean"),
    "leaked_p90": ("<=", 1.0, "leaked weight per photo, 90th percentile"),
    "auc_mean": (">=", 0.95, "per-shape detection AUC, mean"),
    "side_accuracy": (">=", 1.0, "one-sided expressions on the correct side"),
    "vertex_median_mm": ("<=", 2.0, "face-region vertex error, median (mm)"),
    "vertex_p90_mm": (None, None, "face-region vertex error, 90th percentile (mm)"),
    "rotation_mean_deg": ("<=", 2.0, "head rotation error, mean geodesic (deg)"),
    "rotation_p90_deg": (None, None, "head rotation error, 90th percentile (deg)"),
    "yaw_mean_deg": ("<=", 2.0, "yaw error, mean (deg)"),
    "pitch_mean_deg": ("<=", 2.0, "pitch error, mean (deg)"),
    "roll_mean_deg": ("<=", 2.0, "roll error, mean (deg)"),
    "expression_mae": (None, None, "expression weight MAE, all shapes"),
    "fit_ms_mean": ("<=", 100.0, "analyse after the detector, mean (ms per photo)"),
}


def met(key: str, value: float) -> bool | None:
    """Whether ``value`` meets the target of ``key`` (None: no target)."""
    op, threshold, _ = TARGETS[key]
    if op is None or not np.isfinite(value):
        return None if op is None else False
    return bool(value <= threshold) if op == "<=" else bool(value >= threshold)


def detection_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (N,) for boolean ``labels`` (N,); ties count half (Mann–Whitney).

    NaN when only one class is present.
    """
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


#: Sided shapes left out of the side accuracy: a sideways gaze turns ``eyeLookIn`` on one eye and ``eyeLookOut``
#: on the other, which is not a one-sided expression (gaze is scored per shape).
NOT_ONE_SIDED = ("eyeLook",)


def sided_pairs(names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(left index, right index) of every ``X_L``/``X_R`` pair of shapes that can be one-sided expressions."""
    index = {n: i for i, n in enumerate(names)}
    return [(i, index[n[:-2] + "_R"]) for n, i in index.items()
            if n.endswith("_L") and n[:-2] + "_R" in index and not n.startswith(NOT_ONE_SIDED)]


def expression_metrics(names: tuple[str, ...], true_w: np.ndarray, fit_w: np.ndarray) -> dict:
    """Scores that do not reward timidity: error on the shapes that are on, weight leaked onto the ones that are
    off (per-photo sum), per-shape detection AUC and the side of one-sided expressions, besides plain MAE."""
    on = true_w > 0
    err = np.abs(fit_w - true_w)
    leaked = np.where(on, 0.0, fit_w).sum(1)
    auc = np.array([detection_auc(fit_w[:, e], on[:, e]) for e in range(len(names))])
    # one-sided: shape on at one side only; correct when the fit puts more weight there than on the other side
    side_hits = []
    for left, right in sided_pairs(names):
        for shown, other in ((left, right), (right, left)):
            rows = on[:, shown] & ~on[:, other]
            side_hits.extend(fit_w[rows, shown] > fit_w[rows, other])
    per_shape = {
        name: {"mae": float(err[:, e].mean()),
               "on_error": float(err[on[:, e], e].mean()) if on[:, e].any() else None,
               "scenes_on": int(on[:, e].sum()),
               "mean_true_on": float(true_w[on[:, e], e].mean()) if on[:, e].any() else None,
               "mean_fit_on": float(fit_w[on[:, e], e].mean()) if on[:, e].any() else None,
               "mean_fit_off": float(fit_w[~on[:, e], e].mean()) if (~on[:, e]).any() else None,
               "auc": None if np.isnan(auc[e]) else float(auc[e])}
        for e, name in enumerate(names)}
    return {
        "expression_mae": float(err.mean()),
        "on_shape_error": float(err[on].mean()) if on.any() else float("nan"),
        "leaked_mean": float(leaked.mean()),
        "leaked_p90": float(np.percentile(leaked, 90)),
        "auc_mean": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
        "auc_shapes": int(np.isfinite(auc).sum()),
        "side_accuracy": float(np.mean(side_hits)) if side_hits else float("nan"),
        "side_cases": len(side_hits),
        "per_shape": per_shape,
        "per_scene_on_error": [float(err[i, on[i]].mean()) if on[i].any() else None for i in range(len(on))],
        "per_scene_leaked": leaked.tolist(),
    }


def face_vertex_errors(model: HeadModel, true_identity: np.ndarray, true_expression: np.ndarray,
                       fit_identity: np.ndarray, fit_expression: np.ndarray) -> np.ndarray:
    """Distances (mm) over the face region [0, face_vertex_count) between the fitted and the true posed mesh,
    after a similarity (Umeyama) alignment of the fitted one onto the true one; pose and scale do not count."""
    face = slice(0, model.face_vertex_count)
    truth = model.vertices(true_identity, true_expression)[face]
    fitted = model.vertices(fit_identity, fit_expression)[face]
    scale, rot, trans = similarity_transform(fitted, truth)
    return np.linalg.norm(scale * fitted @ rot.T + trans - truth, axis=1) * 1000.0


def pose_errors(true_rot: np.ndarray, fit_rot: np.ndarray) -> dict[str, np.ndarray]:
    """Per-scene signed yaw, pitch, roll errors (fit − true) and the geodesic angle between the rotations (deg)."""
    true_angles = np.array([head_angles(r) for r in true_rot])
    fit_angles = np.array([head_angles(r) for r in fit_rot])
    diff = (fit_angles - true_angles + 180.0) % 360.0 - 180.0
    relative = np.einsum("nij,nkj->nik", fit_rot, true_rot)
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return {"yaw": diff[:, 0], "pitch": diff[:, 1], "roll": diff[:, 2], "rotation": np.degrees(np.arccos(cos))}


def landmark_regions() -> dict[str, list[int]]:
    """MediaPipe face-mesh landmark ids per region (from MediaPipe's own contour sets)."""
    import mediapipe as mp

    fm = mp.solutions.face_mesh

    sets = {"eyes": fm.FACEMESH_LEFT_EYE | fm.FACEMESH_RIGHT_EYE,
            "brows": fm.FACEMESH_LEFT_EYEBROW | fm.FACEMESH_RIGHT_EYEBROW, "lips": fm.FACEMESH_LIPS,
            "nose": fm.FACEMESH_NOSE, "oval": fm.FACEMESH_FACE_OVAL}
    return {name: sorted({i for edge in edges for i in edge}) for name, edges in sets.items()}


#: MediaPipe ids (upper lid, lower lid, outer corner, inner corner) of the subject's right and left eye.
EYE_APERTURE_IDS = ((159, 145, 33, 133), (386, 374, 263, 362))


def eye_aperture(points: np.ndarray) -> np.ndarray:
    """Lid gap over eye width (N,2: subject's right, left) of landmark sets (N,468,2)."""
    def ratio(ids: tuple[int, ...]) -> np.ndarray:
        up, lo, outer, inner = (points[:, i] for i in ids)
        return np.linalg.norm(up - lo, axis=-1) / np.linalg.norm(outer - inner, axis=-1)

    return np.stack([ratio(ids) for ids in EYE_APERTURE_IDS], -1)


def landmark_consistency(truth_px: np.ndarray, detected_px: np.ndarray) -> dict[str, float]:
    """How far the detector's landmarks (N,468,2 px) lie from where the correspondence table puts them on the
    true mesh (N,468,2 px): mean distance per region in % of the true inter-ocular distance, and the ratio of
    detected minus true eye aperture (lid gap over eye width). This is the floor the landmark fit starts from,
    not a fit error."""
    iod = np.linalg.norm(truth_px[:, 263] - truth_px[:, 33], axis=-1)[:, None]
    err = np.linalg.norm(detected_px - truth_px, axis=-1) / iod * 100.0
    out = {"all": float(err.mean())}
    out.update({name: float(err[:, ids].mean()) for name, ids in landmark_regions().items()})
    out["eye_aperture_bias"] = float((eye_aperture(detected_px) - eye_aperture(truth_px)).mean())
    return out


def summary(expression: dict, vertex_mm: list[np.ndarray], pose: dict[str, np.ndarray]) -> dict:
    """The headline accuracy figures (keys of :data:`TARGETS` but timing, plus signed pose biases)."""
    pooled = np.concatenate(vertex_mm)
    out = {k: expression[k] for k in ("expression_mae", "on_shape_error", "leaked_mean", "leaked_p90", "auc_mean",
                                      "side_accuracy")}
    out.update(vertex_median_mm=float(np.median(pooled)), vertex_p90_mm=float(np.percentile(pooled, 90)),
               rotation_mean_deg=float(pose["rotation"].mean()),
               rotation_p90_deg=float(np.percentile(pose["rotation"], 90)))
    for axis in ("yaw", "pitch", "roll"):
        out[f"{axis}_mean_deg"] = float(np.abs(pose[axis]).mean())
        out[f"{axis}_bias_deg"] = float(pose[axis].mean())
    return out
