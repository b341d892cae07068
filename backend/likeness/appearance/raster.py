"""A small vectorised triangle rasteriser in NumPy (no GPU, no OpenGL).

Pixel ``(row, col)`` has its centre at ``(col + 0.5, row + 0.5)`` in the same 2D coordinates as the triangle
corners (pixels: x right, y down).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

_CHUNK = 4_000_000  # candidate pixels processed at once (bounds memory to a few hundred MB)
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="likeness-raster")


def rasterize(corners: np.ndarray, width: int, height: int, depth: np.ndarray | None = None,
              parts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cover a (height, width) grid with triangles.

    corners: (N,3,2) corner positions in pixels; depth: optional (N,3) per-corner depth (smaller wins).
    Returns ``triangle`` (H,W) int32 (−1 where empty) and ``bary`` (H,W,3) float32 barycentric weights.
    Without ``depth``, overlapping triangles resolve arbitrarily (use it for non-overlapping UV layouts).
    ``parts`` > 1 splits the triangles into that many runs covered in parallel threads (NumPy releases the GIL)
    and merged in order, nearest first.
    """
    corners = np.asarray(corners, np.float64)
    first, second, third = corners[:, 0], corners[:, 1], corners[:, 2]  # (NumPy reduces short axes slowly)
    lo = np.floor(np.minimum(np.minimum(first, second), third) - 0.5).astype(np.int64) + 1  # first centre ≥ min
    hi = np.floor(np.maximum(np.maximum(first, second), third) - 0.5).astype(np.int64)
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
    step = min(_CHUNK, -(-int(cum[-1]) // max(parts, 1))) if len(cum) else _CHUNK
    splits = np.searchsorted(cum, np.arange(step, cum[-1], step)) if len(cum) else []
    chunks = [chunk for chunk in np.split(ids, splits) if len(chunk)]

    def cover(chunk: np.ndarray) -> tuple[np.ndarray, ...]:
        return _cover(chunk, lo, span, counts, coeff, width, depth)

    covered = _POOL.map(cover, chunks) if parts > 1 and len(chunks) > 1 else map(cover, chunks)
    for pix, z, tri, w in covered:  # in order: the same result however the triangles were split
        if depth is None:
            tri_map[pix], bary_map[pix] = tri, w
            continue
        nearer = z < best[pix]
        pix, z, tri, w = pix[nearer], z[nearer], tri[nearer], w[nearer]
        best[pix], tri_map[pix], bary_map[pix] = z, tri, w
    return tri_map.reshape(height, width), bary_map.reshape(height, width, 3)


def _cover(chunk: np.ndarray, lo: np.ndarray, span: np.ndarray, counts: np.ndarray, coeff: np.ndarray, width: int,
           depth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The pixels (flat indices) that triangles ``chunk`` cover, with their depth (None without ``depth``),
    triangle and barycentric weights; with ``depth``, only the nearest triangle of the chunk per pixel."""
    n = counts[chunk]
    tri = np.repeat(chunk.astype(np.int32), n)
    local = np.arange(n.sum(), dtype=np.int32) - np.repeat((np.cumsum(n) - n).astype(np.int32), n)
    dy, dx = np.divmod(local, span[tri, 0].astype(np.int32))
    x = lo[tri, 0].astype(np.int32) + dx
    y = lo[tri, 1].astype(np.int32) + dy
    c = np.take(coeff, tri, axis=0)  # (n,3,3) float32
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    xf += np.float32(0.5)  # pixel centres (exact in float32)
    yf += np.float32(0.5)
    w = c[:, :, 0] * xf[:, None]
    w += c[:, :, 1] * yf[:, None]
    w += c[:, :, 2]
    inside = (w[:, 0] >= -1e-5) & (w[:, 1] >= -1e-5) & (w[:, 2] >= -1e-5)
    y *= width
    y += x  # the flat pixel index
    tri, w, pix = tri[inside], w[inside], y[inside]
    if depth is None:
        return pix, None, tri, w
    d = np.take(depth, tri, axis=0)
    z = w[:, 0] * d[:, 0] + w[:, 1] * d[:, 1] + w[:, 2] * d[:, 2]  # as .sum(1) adds them, in order
    # nearest per pixel: sort by pixel, then depth (depth scaled into [0, 0.5) rides on the pixel index)
    span_z = max(float(z.max() - z.min()), 1e-12) if len(z) else 1.0
    order = np.argsort(pix + 0.5 * (z - z.min(initial=0.0)) / span_z * (1 - 1e-9), kind="stable")
    pix, z, tri, w = pix[order], z[order], tri[order], w[order]
    first = np.r_[True, pix[1:] != pix[:-1]] if len(pix) else np.zeros(0, bool)
    return pix[first], z[first], tri[first], w[first]


def vertex_normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3) of a triangle mesh with CCW-outside winding."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    fn = np.cross(b - a, c - a)
    idx = tris.ravel()
    normals = np.stack([np.bincount(idx, np.repeat(fn[:, d], 3), minlength=len(verts)) for d in range(3)], -1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
