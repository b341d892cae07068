"""The hair mask of a head: where the photos saw hair, tidied, and carried over the crown they could not see.

A photo shows the front and top of the hair; the back of the head is unseen, and a cap that stops where the photo
stopped leaves a bald patch behind. Where most of the seen scalp (above the forehead) is hair, the unseen surface
above the brows' height (head frame, +Y up, metres) is taken as hair too, fading in over :data:`CROWN_RAMP`
metres so the cap's lower edge at the back is soft. A bald head (little hair seen on the scalp) keeps a bare crown.
"""

from __future__ import annotations

import numpy as np

from ..model.headmodel import HeadModel
from ..capture.segment import tidy_hair_mask
from .texture import PhotoView, bake_masks, uv_map

#: The unseen crown counts as hair when at least this share of the seen scalp is hair.
CROWN_HAIR_SHARE = 0.5
#: Metres over which the crown's hair fades in above the brows' height.
CROWN_RAMP = 0.02
#: The seen scalp whose hair share decides: surface this many metres above the brows (above most foreheads).
SCALP_ABOVE_BROWS = 0.05


def hair_masks(model: HeadModel, views: list[PhotoView], hair: list[np.ndarray], size: int) -> dict[int, np.ndarray]:
    """Grey hair masks (S,S uint8, ``size`` = S) of every projected material from the photos' hair masks
    (``hair``: h,w uint8 per view), tidied (:func:`likeness.capture.segment.tidy_hair_mask`) and with the unseen crown
    filled where the seen scalp is mostly hair."""
    probes = [np.dstack([m, np.full_like(m, 255), np.zeros_like(m)]) for m in hair]  # hair; seen at all
    baked = bake_masks(model, views, probes, size)
    masks = {i: tidy_hair_mask(b[..., 0]) for i, b in baked.items()}
    seen = {i: b[..., 1] for i, b in baked.items()}
    brow_height = float(model.neutral[model.landmarks_68[17:27], 1].mean())
    heights = {i: uv_map(model, i, size).blend @ model.neutral[:, 1].astype(np.float64) for i in masks}  # per texel
    if _scalp_hair_share(model, masks, seen, heights, brow_height) < CROWN_HAIR_SHARE:
        return masks
    for i, mask in masks.items():
        uvm, height = uv_map(model, i, size), heights[i]
        crown = np.clip((height - brow_height) / CROWN_RAMP, 0.0, 1.0)
        unseen = 1.0 - seen[i].ravel()[uvm.texels] / 255.0
        flat = mask.ravel()  # a view: filled in place
        value = flat[uvm.texels].astype(np.float64)
        flat[uvm.texels] = np.round(np.maximum(value, 255.0 * crown * unseen)).astype(np.uint8)
    return masks


def _scalp_hair_share(model: HeadModel, masks: dict[int, np.ndarray], seen: dict[int, np.ndarray],
                      heights: dict[int, np.ndarray], brow_height: float) -> float:
    """The share of the seen surface well above the brows' height (``heights``: each material's texel heights, m)
    that the photos saw as hair (0 when none is seen)."""
    hair_sum = seen_sum = 0.0
    for i, mask in masks.items():
        uvm = uv_map(model, i, mask.shape[0])
        above = heights[i] > brow_height + SCALP_ABOVE_BROWS
        w = seen[i].ravel()[uvm.texels][above] / 255.0
        hair_sum += float((w * mask.ravel()[uvm.texels][above] / 255.0).sum())
        seen_sum += float(w.sum())
    return hair_sum / seen_sum if seen_sum > 0 else 0.0
