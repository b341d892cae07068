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


def texel_fill(texels: np.ndarray, size: int, premultiplied: np.ndarray, weight: np.ndarray, prior: np.ndarray,
               want: np.ndarray) -> np.ndarray:
    """:func:`smooth_fill` for a texture given as its N island texels, at the texels ``want`` (bool, N).

    ``texels`` (N,) are flat indices into the S×S texture (``size`` = S), ``premultiplied`` (N,C) colour × weight,
    ``weight`` (N,) in [0, 1]; texels outside the islands count as unseen. Returns (want.sum(), C) float32. The
    colour is averaged into a WORK_SIZE grid (area average), filled there and sampled back bilinearly.
    """
    ws = min(WORK_SIZE, size)
    row, col = np.divmod(np.asarray(texels, np.int64), size)
    cell = (row * ws // size) * ws + col * ws // size
    area = (size / ws) ** 2
    w_small = (np.bincount(cell, weight, ws * ws) / area).astype(np.float32).reshape(ws, ws)
    p_small = np.stack([np.bincount(cell, premultiplied[:, k], ws * ws) for k in range(premultiplied.shape[1])],
                       axis=1).astype(np.float32).reshape(ws, ws, -1) / np.float32(area)
    filled = smooth_fill(p_small, w_small, prior)
    scale = np.float32(ws / size)
    x = (col[want].astype(np.float32) + 0.5) * scale - 0.5
    y = (row[want].astype(np.float32) + 0.5) * scale - 0.5
    pad = (-len(x)) % 1024
    x, y = (np.concatenate([v, np.zeros(pad, np.float32)]).reshape(-1, 1024) for v in (x, y))
    sampled = cv2.remap(filled, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(-1, filled.shape[2])[:int(np.count_nonzero(want))]
