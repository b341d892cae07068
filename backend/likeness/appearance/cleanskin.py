"""How clean is the skin albedo: which share of its texels came from pixels that are not skin.

The bake is run on probe images instead of the photos: each photo's pixels are replaced by its labels
(:mod:`likeness.capture.segment`) as colour channels (red = hair, green = clothing/body, blue = background; a
second probe's red = the mouth's opening), and the probe is baked exactly as the albedo is (same
weights, mirror images and fill; the fill is black). A texel's probe colour is then the share of its colour that
came from hair, clothing, background and opening pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..model.headmodel import HeadModel
from ..capture.segment import BACKGROUND, CLOTHING, HAIR, OPENING, Segmentation
from .texture import PhotoView, bake_textures, uv_map

#: The probe's channels, in order.
CLASSES = ("hair", "clothing", "background", "opening")
_LABELS = (HAIR, CLOTHING, BACKGROUND, OPENING)
#: A texel counts as non-skin when more than half its colour came from non-skin pixels.
MAJORITY = 127


def _probe(segmentation: Segmentation, labels: tuple[int, ...]) -> np.ndarray:
    """(h,w,3) uint8: 255 in channel k where the pixel's label is ``labels[k]`` (up to three; the rest stay 0)."""
    channels = [segmentation.labels == label for label in labels]
    channels += [np.zeros_like(channels[0])] * (3 - len(channels))
    return np.stack(channels, axis=-1) * np.uint8(255)


def nonskin_share(model: HeadModel, views: list[PhotoView], segments: list[Segmentation], size: int,
                  masked: bool = True, skins: list[np.ndarray] | None = None) -> dict:
    """Shares of the skin albedo's texels whose colour came mostly from non-skin pixels.

    ``views`` are the photos' views (their ``rgb`` and ``skin`` are ignored), ``segments`` their labels; ``masked``
    bakes with the skin masks (as the pipeline does), False without them (as before the masks existed); ``skins``
    (one per view, the shape of the labels) bakes with these skin weights instead of the segmentations'. Counted
    over the texels of all projected materials that the photos see (the bake without masks takes more than half
    their colour from the photos, not from the fill), the same texels either way. Returns ``{"texels": n,
    "nonskin": share, "hair": share, "clothing": share, "background": share, "opening": share, "mean_share": mean
    non-skin share of the colour}``, shares in [0, 1].
    """
    if len(views) != len(segments) or not views or (skins is not None and len(skins) != len(views)):
        raise ValueError("nonskin_share needs one segmentation (and skin weights, if given) per view, and at least "
                         "one view")
    black = np.zeros(3)
    # the probes have the labels' size: the pixel positions scale with them
    views = [replace(v, px=v.px * np.array([s.labels.shape[1] / v.rgb.shape[1], s.labels.shape[0] / v.rgb.shape[0]],
                                           np.float32)) for v, s in zip(views, segments)]
    seen_probes = [replace(v, rgb=np.full_like(s.labels, 255)[..., None].repeat(3, -1), skin=None)
                   for v, s in zip(views, segments)]
    skins = skins or [s.skin if masked else None for s in segments]
    baked = [bake_textures(model, [replace(v, rgb=_probe(s, group), skin=skin)
                                   for v, s, skin in zip(views, segments, skins)], size, fill_color=black)
             for group in (_LABELS[:3], _LABELS[3:])]
    seen = bake_textures(model, seen_probes, size, fill_color=black)
    values, covered = [], []
    for i in seen:
        texels = uv_map(model, i, size).texels
        probe = np.concatenate([b[i].reshape(-1, 3)[texels] for b in baked], 1)
        values.append(probe[:, :len(CLASSES)].astype(np.int32))
        covered.append(seen[i].reshape(-1, 3)[texels, 0] > MAJORITY)
    value, covered = np.concatenate(values), np.concatenate(covered)
    value = value[covered]
    n = int(covered.sum())
    if n == 0:
        return {"texels": 0, "nonskin": 0.0, "mean_share": 0.0, **{name: 0.0 for name in CLASSES}}
    result = {"texels": n, "nonskin": float((value.sum(1) > MAJORITY).mean()),
              "mean_share": float(value.sum(1).mean() / 255.0)}
    result.update({name: float((value[:, k] > MAJORITY).mean()) for k, name in enumerate(CLASSES)})
    return result
