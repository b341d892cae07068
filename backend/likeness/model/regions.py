"""Named regions of the face surface (skin, lips, brows, eyelids, nostrils), derived from the 68 landmarks.

Any topology with ``landmarks_68`` and a face region gets them: a face vertex belongs to a feature when it lies
within a feature's radius of that feature's landmark polyline on the neutral head. Used to pick clean skin for
the light estimate and to give materials per-region roughness.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .headmodel import HeadModel

SKIN, LIPS, BROWS, EYELIDS, NOSTRILS, NOSE = range(6)
#: (region, iBUG-68 landmark indices along a polyline, radius in metres), in priority order (later wins)
_FEATURES = (
    (NOSE, [27, 28, 29, 30, 33], 0.010),
    (BROWS, [17, 18, 19, 20, 21], 0.007),
    (BROWS, [22, 23, 24, 25, 26], 0.007),
    (EYELIDS, [36, 37, 38, 39, 40, 41, 36], 0.007),
    (EYELIDS, [42, 43, 44, 45, 46, 47, 42], 0.007),
    (NOSTRILS, [31, 32, 33, 34, 35], 0.005),
    (LIPS, [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 48], 0.004),
)
#: Roughness per region (Principled BSDF): lips and the oily nose are glossier, brows are matte.
ROUGHNESS = {SKIN: 0.52, LIPS: 0.36, BROWS: 0.7, EYELIDS: 0.45, NOSTRILS: 0.6, NOSE: 0.42}


@lru_cache(maxsize=4)
def vertex_regions(model: HeadModel) -> np.ndarray:
    """Region id (V,) int8 of every vertex; vertices outside the face region are :data:`SKIN`."""
    verts = model.neutral[:model.face_vertex_count].astype(np.float64)
    marks = model.neutral[model.landmarks_68].astype(np.float64)
    regions = np.full(model.vertex_count, SKIN, np.int8)
    for region, ids, radius in _FEATURES:
        if region == BROWS:  # brows sit above their landmarks' polyline: centre the band on the hair
            points = marks[ids] + np.array([0.0, 0.003, 0.0])
        else:
            points = marks[ids]
        near = _distance_to_polyline(verts, points) < radius
        regions[:model.face_vertex_count][near] = region
    return regions


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance (N,) from each point (N,3) to the nearest segment of a polyline (M,3)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(np.einsum("nsk,sk->ns", points[:, None] - a[None], ab) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None] - closest, axis=2).min(1)
