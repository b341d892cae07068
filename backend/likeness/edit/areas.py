"""Regions an edit may be restricted to (``--region``): per-vertex weights and the matching UV-map masks.

No torch. Regions come from the head's materials (the face and scalp UV tiles, the eyes) and from
:mod:`likeness.model.regions` (lips, brows, eyelids, nose, plain skin, derived from the 68 landmarks).
"""

from __future__ import annotations

import numpy as np

from ..model import regions as named
from ..errors import BadInput
from ..model.headmodel import HeadModel
from ..appearance.texture import uv_map

REGIONS = ("face", "skin", "lips", "eyes", "nose", "brows", "scalp")


def _material_vertices(model: HeadModel, names: tuple[str, ...]) -> np.ndarray:
    ids = [i for i, m in enumerate(model.materials) if m.name in names]
    polys = model.faces[np.isin(model.face_material, ids)]
    used = np.zeros(model.vertex_count, bool)
    used[polys[polys >= 0]] = True
    return used


def vertex_mask(model: HeadModel, region: str) -> np.ndarray:
    """(V,) float32: 1 where ``region`` lies, else 0."""
    if region not in REGIONS:
        raise BadInput(f"Unknown region {region!r}.", f"Use one of: {', '.join(REGIONS)}.")
    face = _material_vertices(model, ("skin_face",))
    scalp = _material_vertices(model, ("skin_head",)) & ~face
    if region == "face":
        return face.astype(np.float32)
    if region == "scalp":
        return scalp.astype(np.float32)
    kinds = named.vertex_regions(model)
    if region == "eyes":
        mask = (face & (kinds == named.EYELIDS)) | _material_vertices(model, ("iris", "sclera", "cornea"))
    else:
        wanted = {"skin": (named.SKIN,), "lips": (named.LIPS,), "nose": (named.NOSE, named.NOSTRILS),
                  "brows": (named.BROWS,)}[region]
        mask = np.isin(kinds, wanted) & (face | (scalp if region == "skin" else False))
    return mask.astype(np.float32)


def texel_masks(model: HeadModel, mask: np.ndarray, sizes: dict[int, int]) -> dict[int, np.ndarray]:
    """Per textured material (index → map side in px) the region's mask (S,S) float32 over its UV map: the
    vertex weights interpolated over the UV triangles, spread past the islands' borders like the textures."""
    out = {}
    for material, size in sizes.items():
        uvm = uv_map(model, material, size)
        inside = uvm.blend @ mask.astype(np.float32)
        flat = np.zeros(size * size, np.float32)
        flat[uvm.texels] = inside
        border = inside[uvm.nearest]
        border[uvm.far] = 0.0
        flat[uvm.outside] = border
        out[material] = flat.reshape(size, size)
    return out
