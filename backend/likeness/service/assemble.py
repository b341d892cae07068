"""What both reconstruct jobs (the ICT head: :mod:`.pipeline`; FLAME: :mod:`.flame_job`) add to a bundle beside the
mesh: each projected material's maps, the hair masks and the hair's colour, the iris colour."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..appearance.albedo import Delit, hair_color, iris_color
from ..appearance.hair import hair_masks
from ..appearance.maps import has_face_detail, normal_map, roughness_png
from ..appearance.light import linear_to_srgb8
from ..appearance.texture import PhotoView, bake_textures, uv_map
from ..capture.images import Photo
from ..capture.landmarks import FaceLandmarks
from ..capture.segment import Segmentation
from ..model.headmodel import HeadModel
from .bundle import BundleWriter

#: The hair mask textures are this many times smaller than the colour textures (a soft mask needs no more).
HAIR_MASK_DOWNSCALE = 4
#: A material gets a hair mask when at least this share of its texels is more hair than not.
MIN_HAIR_SHARE = 0.005


def add_maps(writer: BundleWriter, model: HeadModel, material: int, albedo_rgb: np.ndarray) -> dict[str, str]:
    """Queue a projected material's albedo and roughness maps, and for the face tile the detail normal map;
    returns their bundle paths by channel."""
    name = model.materials[material].name
    files = {"base_color": writer.add_image(f"textures/{name}_albedo.png", albedo_rgb),
             "roughness": writer.add_image(f"textures/{name}_roughness.png",
                                           roughness_png(model, material, albedo_rgb.shape[0]))}
    if has_face_detail(model, material):
        files["normal"] = writer.add_image(f"textures/{name}_normal.png", lambda: normal_map(albedo_rgb))
    return files


def hair_masks_and_color(model: HeadModel, views: list[PhotoView], segments: list[Segmentation | None],
                         size: int) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
    """The hair of the materials that hold some: per material index its mask (grey) and colour texture (RGB,
    sRGB: the photos' delit hair, the hair's median colour where they saw none), both
    (size / HAIR_MASK_DOWNSCALE)² uint8; and the hair's colour (linear RGB, 0–1). ({}, None) where the photos saw no
    hair."""
    seen = [(view, seg) for view, seg in zip(views, segments) if seg is not None and seg.hair_rgb is not None]
    colors = [c for view, seg in seen if (c := hair_color(view.rgb, seg.hair)) is not None]
    if not colors:
        return {}, None
    small = max(size // HAIR_MASK_DOWNSCALE, 16)
    masks = hair_masks(model, [v for v, _ in seen], [s.hair for _, s in seen], small)
    masks = {i: mask for i, mask in masks.items()
             if (mask.ravel()[uv_map(model, i, mask.shape[0]).texels] > 127).mean() >= MIN_HAIR_SHARE}
    weights = np.array([n for _, n in colors], np.float64)
    color = (np.array([c for c, _ in colors]) * weights[:, None]).sum(0) / weights.sum()
    # the hair's own colour: the photos weighted by how surely each pixel is hair, as the skin is by its mask; the
    # median hair colour where no photo saw hair (a smooth fill there cost a tenth of a 1024² job for little)
    hair_views = [replace(view, skin=seg.hair) for view, seg in seen]
    median = linear_to_srgb8(np.clip(color, 0, 1)).astype(np.float32)
    textures = bake_textures(model, hair_views, small, fill_color=median) if masks else {}
    return {i: (mask, textures[i]) for i, mask in masks.items()}, color


def add_hair(writer: BundleWriter, model: HeadModel, hair: dict[int, tuple[np.ndarray, np.ndarray]],
             color: np.ndarray | None, texture_files: dict[int, dict[str, str]]) -> dict | None:
    """Queue the hair masks and colour textures (their paths go into ``texture_files`` as channels ``hair_mask``
    and ``hair_color``); the manifest's ``hair`` record or None."""
    if not hair or color is None:
        return None
    named = []
    for i, (mask, colour) in hair.items():
        name = model.materials[i].name
        files = texture_files.setdefault(i, {})
        files["hair_mask"] = writer.add_image(f"textures/{name}_hair_mask.png", mask)
        files["hair_color"] = writer.add_image(f"textures/{name}_hair_color.png", colour)
        named.append(name)
    return {"color": np.round(np.clip(color, 0.0, 1.0), 5).tolist(), "materials": named}


def iris_colors(model: HeadModel, photos: list[Photo], found: list[FaceLandmarks],
                 delit: list[Delit]) -> dict[int, tuple[float, float, float, float]]:
    """The iris material's colour (linear RGBA) from the photos' irises, averaged; empty when none is seen."""
    seen = [c for photo, lm, lit in zip(photos, found, delit)
            if (c := iris_color(photo.rgb, lm.points_px, lit.light_camera)) is not None]
    if not seen:
        return {}
    color = (*np.mean(seen, axis=0).round(5).tolist(), 1.0)
    return {i: color for i, mat in enumerate(model.materials) if mat.name == "iris"}
