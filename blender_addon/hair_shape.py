"""Where the hair stands off the scalp: per-vertex weights from the bundle's hair masks (pure NumPy, no bpy).

The bundle's ``hair_mask`` textures say how much of each texel the photos saw as hair (0..1, a quarter of the
albedo's size). The import can lift the head's surface there by a thickness (a Displace modifier along the
normals, weighted by a vertex group: see :func:`build._hair_volume`), so the hair has a volume instead of being
painted on a bald scalp. This module turns the masks into that vertex group's weights.

UVs follow the bundle (and Blender): u right, v up, both 0..1; mask rows are stored top row first (as in the
PNG), so texel row = (1 − v) × height.
"""

from __future__ import annotations

import numpy as np

#: Edge rings over which the weights are smoothed, so the lifted surface slopes into the skin
#: instead of stepping up at the mask's edge (about 5 mm per ring on the scalp of the ICT head).
SMOOTH_RINGS = 4


def sample_mask(mask: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(N,)`` of a mask ``(H, W)`` in 0..1 at UVs ``(N, 2)`` (clamped to the texture)."""
    h, w = mask.shape
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    top = mask[y0, x0] * (1 - fx) + mask[y0, x1] * fx
    bottom = mask[y1, x0] * (1 - fx) + mask[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def vertex_hair_weights(faces: np.ndarray, faces_uv: np.ndarray, uv: np.ndarray, face_material: np.ndarray,
                        masks: dict[int, np.ndarray], vertex_count: int,
                        smooth_rings: int | None = None) -> np.ndarray:
    """Per-vertex hair weight ``(V,)`` in 0..1.

    ``faces``/``faces_uv`` (F, 4) with -1 padding for triangles, ``uv`` (T, 2), ``face_material`` (F,), ``masks``
    {material index: (H, W) mask in 0..1} for the materials that carry one. A vertex takes the largest mask value
    among its corners (a UV seam gives a vertex several), then the weights are averaged with their edge
    neighbours ``smooth_rings`` times (default :data:`SMOOTH_RINGS`; they reach at most that many edges past the
    mask, farther skin stays 0).
    """
    smooth_rings = SMOOTH_RINGS if smooth_rings is None else smooth_rings
    weights = np.zeros(vertex_count)
    corners = faces != -1
    for material, mask in masks.items():
        rows = face_material == material
        if not rows.any():
            continue
        used = corners[rows]
        values = sample_mask(np.asarray(mask, dtype=np.float64), uv[faces_uv[rows][used]].astype(np.float64))
        np.maximum.at(weights, faces[rows][used], np.clip(values, 0.0, 1.0))
    if smooth_rings <= 0 or not weights.any():
        return weights
    a, b = _edges(faces)
    degree = np.bincount(np.concatenate([a, b]), minlength=vertex_count).astype(np.float64)
    for _ in range(smooth_rings):
        total = weights.copy()
        np.add.at(total, a, weights[b])
        np.add.at(total, b, weights[a])
        weights = total / (degree + 1.0)
    return weights


def _edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges ``(a, b)`` of polygons (F, 4) with -1 padding."""
    nxt = np.roll(faces, -1, axis=1)
    tri = faces[:, 3] == -1
    nxt[tri, 2] = faces[tri, 0]  # a triangle's third corner closes on its first
    valid = (faces != -1) & (nxt != -1)
    pairs = np.sort(np.stack([faces[valid], nxt[valid]], axis=1), axis=1)
    pairs = np.unique(pairs, axis=0)
    return pairs[:, 0], pairs[:, 1]
