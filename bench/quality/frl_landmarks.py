"""Facial features that the dev set's manual templates, MediaPipe and the model's iBUG-68 points all name.

The dev photos carry webmorph/Psychomorph templates: the Face Research Lab 189-point template (London photos) and
the Face++ 106- and 83-point templates (the lisa and zoom photos). Their point definitions are webmorphR's
``inst/extdata/tem_defs/{FRL,fpp106,fpp83}.csv`` (github.com/debruine/webmorphR). In those files "left" is the
*image's* left, i.e. the subject's right; below, ``_R``/``_L`` are the subject's own sides as in the model.

Only features that the three schemes define the same way are used: eye corners, mouth corners, the bottom centre
of the nose (subnasale; the FRL template has no nose-tip point on the midline) and the bottom of the chin.
:func:`mapping_check` confirms the table on the data: for each feature, the template point nearest to MediaPipe's
point should be the one listed here.
"""

from __future__ import annotations

import numpy as np

#: feature → (iBUG-68 index (0-based), MediaPipe index, FRL-189 index, Face++-106 index, Face++-83 index)
FEATURES: dict[str, tuple[int, int, int, int, int]] = {
    "eye_outer_R": (36, 33, 18, 35, 44),
    "eye_inner_R": (39, 133, 22, 39, 79),
    "eye_inner_L": (42, 362, 23, 44, 61),
    "eye_outer_L": (45, 263, 27, 48, 40),
    "nose_base": (33, 2, 55, 80, 37),
    "mouth_corner_R": (48, 61, 87, 86, 29),
    "mouth_corner_L": (54, 291, 93, 92, 45),
    "chin": (8, 152, 129, 18, 6),
}
NAMES = tuple(FEATURES)
_TABLE = np.array(list(FEATURES.values()))
IBUG68, MEDIAPIPE = _TABLE[:, 0], _TABLE[:, 1]
#: template point count → (template name, column of :data:`FEATURES`)
TEMPLATES = {189: ("FRL-189", 2), 106: ("Face++-106", 3), 83: ("Face++-83", 4)}
#: rows of the outer eye corners (the NME normaliser)
OUTER_EYES = (NAMES.index("eye_outer_R"), NAMES.index("eye_outer_L"))


def template_name(points: np.ndarray) -> str:
    """Name of the template that has this many points."""
    return TEMPLATES[len(points)][0]


def feature_points(template_px: np.ndarray) -> np.ndarray:
    """The features (F,2) from one photo's template points (189, 106 or 83 of them)."""
    return np.asarray(template_px, np.float64)[_TABLE[:, TEMPLATES[len(template_px)][1]]]


def point_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-feature errors (..., F) of predicted features (..., F, 2) in units of the truth's outer-eye distance."""
    iod = np.linalg.norm(truth[..., OUTER_EYES[0], :] - truth[..., OUTER_EYES[1], :], axis=-1)
    return np.linalg.norm(predicted - truth, axis=-1) / iod[..., None]


def mapping_check(mediapipe_px: np.ndarray, templates_px: np.ndarray) -> dict[str, dict]:
    """For each feature, how often the template point nearest to MediaPipe's point is the listed one.

    ``mediapipe_px`` (N,478,2) and ``templates_px`` (N,P,2) hold N photos with the same template. Returns per
    feature the listed index, the most frequent nearest index, the fraction of photos where the two agree and the
    median MediaPipe-to-template distance (fraction of the outer-eye distance).
    """
    name, column = TEMPLATES[templates_px.shape[1]]
    listed = _TABLE[:, column]
    mp = mediapipe_px[:, MEDIAPIPE]  # (N,F,2)
    dist = np.linalg.norm(mp[:, :, None] - templates_px[:, None], axis=-1)  # (N,F,P)
    nearest = dist.argmin(-1)  # (N,F)
    errors = point_errors(mp, templates_px[:, listed])  # (N,F)
    out = {}
    for f, feature in enumerate(NAMES):
        values, counts = np.unique(nearest[:, f], return_counts=True)
        out[feature] = {"template": name, "listed": int(listed[f]), "nearest_mode": int(values[counts.argmax()]),
                        "agree": float((nearest[:, f] == listed[f]).mean()),
                        "median_error_iod": float(np.median(errors[:, f]))}
    return out
