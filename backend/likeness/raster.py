"""A small vectorised triangle rasteriser in NumPy (no GPU, no OpenGL).

Pixel ``(row, col)`` has its centre at ``(col + 0.5, row + 0.5)`` in the same 2D coordinates as the triangle
corners (pixels: x right, y down).
"""

from __future__ import annotations

import numpy as np

_CHUNK = 4_000_000  # candidate pixels processed at once (bounds memory to a few hundred MB)


def rasterize(corners: np.ndarray, width: int, height: int,
              depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cover a (height, width) grid with triangles.

    corners: (N,3,2) corner positions in pixels; depth: optional (N,3) per-corner depth (smaller wins).
    Returns ``triangle`` (H,W) int32 (−1 where empty) and ``bary`` (H,W,3) float32 barycentric weights.
    Without ``depth``, overlapping triangles resolve arbitrarily (use it for non-overlapping UV layouts).
    """
    corners = np.asarray(corners, np.float64)
    lo = np.floor(corners.min(1) - 0.5).astype(np.int64) + 1  # first pixel whose centre is ≥ min
    hi = np.floor(corners.max(1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    span = np.maximum(hi - lo + 1, 0)
    counts = span[:, 0] * span[:, 1]
    # edge-function coefficients: w_i(p) = A_i x + B_i y + C_i, normalised by the signed area
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    ok = (np.abs(area) > 1e-12) & (counts > 0)
    coeff = np.zeros((len(corners), 3, 3))
    for i, (p, q) in enumerate(((b, c), (c, a), (a, b))):  # weight of corner i is the edge opposite to it
        coeff[:, i, 0] = (p[:, 1] - q[:, 1])
        coeff[:, i, 1] = (q[:, 0] - p[:, 0])
        coeff[:, i, 2] = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    coeff[ok] /= area[ok, None, None]
    coeff = coeff.astype(np.float32)

    tri_map = np.full(height * width, -1, np.int32)
    bary_map = np.zeros((height * width, 3), np.float32)
    best = np.full(height * width, np.inf) if depth is not None else None
    ids = np.flatnonzero(ok)
    cum = np.cumsum(counts[ids])
    splits = np.searchsorted(cum, np.arange(_CHUNK, cum[-1], _CHUNK)) if len(cum) else []
    for chunk in np.split(ids, splits):
        if len(chunk) == 0:
            continue
        n = counts[chunk]
        tri = np.repeat(chunk, n)
        local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        wide = span[tri, 0]
        x = lo[tri, 0] + local % wide
        y = lo[tri, 1] + local // wide
        c = coeff[tri]  # (n,3,3) float32
        w = c[:, :, 0] * (x + 0.5).astype(np.float32)[:, None] + c[:, :, 1] * (y + 0.5).astype(np.float32)[:, None]
        w += c[:, :, 2]
        inside = (w >= -1e-5).all(1)
        tri, w, pix = tri[inside], w[inside], (y * width + x)[inside]
        if depth is None:
            tri_map[pix], bary_map[pix] = tri, w
            continue
        z = (w * depth[tri]).sum(1)
        # nearest per pixel: sort by pixel, then depth (depth scaled into [0, 0.5) rides on the pixel index)
        span_z = max(float(z.max() - z.min()), 1e-12)
        order = np.argsort(pix + 0.5 * (z - z.min()) / span_z * (1 - 1e-9), kind="stable")
        pix, z, tri, w = pix[order], z[order], tri[order], w[order]
        first = np.r_[True, pix[1:] != pix[:-1]]
        pix, z, tri, w = pix[first], z[first], tri[first], w[first]
        nearer = z < best[pix]
        pix, z, tri, w = pix[nearer], z[nearer], tri[nearer], w[nearer]
        best[pix], tri_map[pix], bary_map[pix] = z, tri, w
    return tri_map.reshape(height, width), bary_map.reshape(height, width, 3)


def vertex_normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3) of a triangle mesh with CCW-outside winding."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    fn = np.cross(b - a, c - a)
    idx = tris.ravel()
    normals = np.stack([np.bincount(idx, np.repeat(fn[:, d], 3), minlength=len(verts)) for d in range(3)], -1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
