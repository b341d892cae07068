"""Smooth fill of a texture's unseen texels from the colour around them ("push-pull" on an image pyramid).

Where no photo saw the skin (the scalp under the hair, the neck under a collar, the back of the head) a flat skin
tone leaves a seam against the seen skin beside it. Here the seen colour is pushed down an image pyramid
(Gaussian reduce of weight-premultiplied colour and of the weight) and pulled back up, each level keeping its own
colour where it is seen and taking the coarser level's elsewhere: unseen texels get a smooth continuation of the
nearest seen colour, fading to the average of the whole texture far from it, and to ``prior`` where almost
nothing was seen. The fill is smooth, so it is computed at a small size and scaled up (a few milliseconds).

Images are (S,S,C) float32 in any linear unit; weights (S,S) in [0, 1] (1 = fully seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: The fill is computed at this size (it has no detail to lose).
WORK_SIZE = 256


def smooth_fill(premultiplied: np.ndarray, weight: np.ndarray, prior: np.ndarray,
                prior_share: float = 0.02) -> np.ndarray:
    """Fill colours (S,S,C) float32 everywhere, from seen colour × weight ``premultiplied`` (S,S,C) and ``weight``.

    ``prior`` (C,) is what a texture with (almost) nothing seen gets: at the coarsest level it counts as much as
    ``prior_share`` of the texture being seen.
    """
    size = premultiplied.shape[:2]
    work = (min(WORK_SIZE, size[1]), min(WORK_SIZE, size[0]))
    p = cv2.resize(np.ascontiguousarray(premultiplied, np.float32), work, interpolation=cv2.INTER_AREA)
    w = cv2.resize(np.ascontiguousarray(weight, np.float32), work, interpolation=cv2.INTER_AREA)
    if p.ndim == 2:
        p = p[..., None]
    pyramid = [(p, w)]
    while max(pyramid[-1][1].shape) > 2:
        p, w = pyramid[-1]
        pyramid.append((_reduce(p), _reduce(w)))
    p, w = pyramid[-1]
    prior = np.asarray(prior, np.float32)
    total_w = float(w.mean())
    colour = np.broadcast_to((p.mean(axis=(0, 1)) + prior_share * prior) / (total_w + prior_share), p.shape).copy()
    for p, w in reversed(pyramid):
        up = cv2.resize(colour, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(p.shape)
        seen = np.clip(w, 0.0, 1.0)[..., None]
        own = p / np.maximum(w, 1e-6)[..., None]
        colour = seen * own + (1.0 - seen) * up
    out = cv2.resize(colour, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(*size, premultiplied.shape[2] if premultiplied.ndim == 3 else 1).astype(np.float32)


def _reduce(image: np.ndarray) -> np.ndarray:
    """Gaussian reduce to half size (OpenCV's pyrDown), keeping a trailing channel axis as given."""
    out = cv2.pyrDown(image)
    return out.reshape(out.shape[0], out.shape[1], *image.shape[2:])


@dataclass(frozen=True)
class FillGrid:
    """Which of a texture's island texels feed :func:`texture_fill`, and where (made once per UV map and size)."""

    size: int  # S: the texture is S×S
    sample: np.ndarray  # (M,) int64 indices of the texels that feed the working grid (a regular subset)
    cells: np.ndarray  # (M,) int64 their cells in the WORK_SIZE² grid
    per_cell: float  # texels of the S×S texture a cell's sample stands for


def fill_grid(texels: np.ndarray, size: int) -> FillGrid:
    """The :class:`FillGrid` of island texels ``texels`` (flat indices into S×S, ``size`` = S)."""
    ws = min(WORK_SIZE, size)
    row, col = np.divmod(np.asarray(texels, np.int64), size)
    step = max(size // (2 * ws), 1)  # about 4 samples per cell are plenty for a smooth fill
    sample = np.flatnonzero((row % step == 0) & (col % step == 0))
    cells = (row[sample] * ws // size) * ws + col[sample] * ws // size
    return FillGrid(size, sample, cells, float((size / ws / step) ** 2))


def texture_fill(grid: FillGrid, sampled: np.ndarray, sampled_weight: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """:func:`smooth_fill` for a texture given as its island texels (``grid``): an (S,S,4) uint8 RGBA image
    (alpha 255) of fill colours, to be read at the texels.

    ``sampled`` (M,3) is colour (0–255) × weight and ``sampled_weight`` (M,) the weight in [0, 1], both at the
    texels ``grid.sample`` only; texels outside the islands count as unseen. The colour is averaged into a
    WORK_SIZE grid, filled there and scaled up bilinearly.
    """
    size = grid.size
    ws = min(WORK_SIZE, size)
    w_small = (np.bincount(grid.cells, sampled_weight, ws * ws) / grid.per_cell).astype(np.float32)
    p_small = np.stack([np.bincount(grid.cells, sampled[:, k], ws * ws) for k in range(sampled.shape[1])],
                       axis=1).astype(np.float32) / np.float32(grid.per_cell)
    filled = smooth_fill(p_small.reshape(ws, ws, -1), w_small.reshape(ws, ws), prior)
    rgba = np.full((ws, ws, 4), 255, np.uint8)
    rgba[..., :3] = np.clip(filled + 0.5, 0, 255)
    return cv2.resize(rgba, (size, size), interpolation=cv2.INTER_LINEAR)
