"""A quick look at a result without Blender: photo | textured head | shaded overlay with landmarks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..model.headmodel import HeadModel, split_quads
from .light import linear_to_srgb8
from .raster import vertex_normals
from .views import HeadRaster


def surface(model: HeadModel, vertices_cam: np.ndarray, raster: HeadRaster,
            textures: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What each covered raster pixel shows: the mask (H,W), and per covered pixel the texture or base colour
    (N,3, sRGB 0–255), the unit surface normal and the surface point (N,3 each, camera frame, metres)."""
    hit = raster.triangle >= 0
    t = raster.triangle[hit]
    n = raster.at_pixels(model, vertex_normals(vertices_cam, model.triangles))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    p = raster.at_pixels(model, vertices_cam)
    b = raster.bary[hit].astype(np.float64)  # UVs follow the UV polygons, not the vertices
    uv = np.einsum("nk,nkd->nd", b, model.uv[split_quads(model.faces_uv)[t]].astype(np.float64))
    material = model.face_material[model.triangle_face[t]]
    return hit, _colors_at(model, material, uv, textures), n, p


def render_view(model: HeadModel, vertices_cam: np.ndarray, raster: HeadRaster,
                textures: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Colour the rasterised head: textures (or base colours) under a light at the camera.

    Returns the colour (H,W,3) float in [0,255] and the Lambert shading (H,W) in [0,1], NaN where the head is
    absent, both at the raster's resolution.
    """
    hit, colors, n, p = surface(model, vertices_cam, raster, textures)
    shade = np.full(raster.triangle.shape, np.nan)
    shade[hit] = np.clip(-(n * p).sum(1) / np.linalg.norm(p, axis=1), 0, 1)
    color = np.zeros((*raster.triangle.shape, 3))
    color[hit] = colors * (0.35 + 0.65 * shade[hit])[:, None]
    return color, shade


def preview_image(photo: np.ndarray, model: HeadModel, vertices_cam: np.ndarray, raster: HeadRaster,
                  textures: dict[int, np.ndarray], landmarks_px: np.ndarray,
                  normals: np.ndarray | None = None) -> np.ndarray:
    """Three panels side by side (uint8): the photo, the textured head alone, the shaded head over the photo.

    ``normals`` are the unit vertex normals (V,3) of ``vertices_cam`` when already known (a ``PhotoView``'s).
    A quick look, so the head is lit per vertex (Lambert, light at the camera) and the shade interpolated across
    each triangle, in float32: a few times cheaper than :func:`render_view`'s per-pixel normals.
    """
    return compose_preview(preview_layout(photo, model, vertices_cam, raster, landmarks_px, normals), model, textures)


@dataclass(frozen=True)
class PreviewLayout:
    """A preview before the textures are known (:func:`preview_layout`): all but the textured head's pixels."""

    image: np.ndarray  # (h, 3w, 3) uint8: photo | grey | shaded overlay with landmarks; the head's colours unset
    pixels: np.ndarray  # (N,) flat indices of the head's pixels in an (h, w) panel
    uv: np.ndarray  # (N,2) float32 texture coordinates there
    material: np.ndarray  # (N,) material index there
    light: np.ndarray  # (N,) float32 brightness there (0.35 ambient + 0.65 Lambert)


def preview_layout(photo: np.ndarray, model: HeadModel, vertices_cam: np.ndarray, raster: HeadRaster,
                   landmarks_px: np.ndarray, normals: np.ndarray | None = None) -> PreviewLayout:
    """Everything of :func:`preview_image` that does not need the textures (so it can be made while they bake)."""
    scale = raster.scale
    rh, rw = raster.triangle.shape
    covered = np.flatnonzero(raster.triangle.ravel() >= 0)
    tri = raster.triangle.ravel()[covered]
    bary = raster.bary.reshape(-1, 3)[covered]
    normals = vertex_normals(vertices_cam, model.triangles) if normals is None else normals
    facing = -(normals * vertices_cam).sum(1) / np.maximum(np.linalg.norm(vertices_cam, axis=1), 1e-12)
    shade = np.clip(np.einsum("nk,nk->n", bary, facing.astype(np.float32)[model.triangles[tri]]), 0, 1)
    corners_uv, material = _triangle_uv(model)
    uv = np.einsum("nk,nkd->nd", bary, corners_uv[tri])
    rows = np.minimum(((np.arange(rh) + 0.5) / scale).astype(int), photo.shape[0] - 1)
    cols = np.minimum(((np.arange(rw) + 0.5) / scale).astype(int), photo.shape[1] - 1)
    small = photo[rows][:, cols]
    out = np.empty((rh, 3 * rw, 3), np.uint8)
    out[:, :rw] = small
    out[:, rw:2 * rw] = 40
    overlay = out[:, 2 * rw:]
    overlay[...] = small
    r, c = np.divmod(covered, rw)
    tint = np.array([120.0, 200.0, 255.0], np.float32) * shade[:, None]
    out[r, 2 * rw + c] = _to_uint8(np.float32(0.45) * small.reshape(-1, 3)[covered] + np.float32(0.55) * tint)
    for x, y in landmarks_px * scale:
        r, c = int(y), int(x)
        if 0 <= r < rh and 0 <= c < rw:  # landmarks can fall outside a cropped face
            overlay[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = (255, 60, 60)
    return PreviewLayout(out, covered, uv, material[tri], np.float32(0.35) + np.float32(0.65) * shade)


def compose_preview(layout: PreviewLayout, model: HeadModel, textures: dict[int, np.ndarray]) -> np.ndarray:
    """The preview image: ``layout`` with the head in its middle panel coloured by ``textures`` (S,S,3 uint8 by
    material index; other materials show their base colour)."""
    colors = _colors_at(model, layout.material, layout.uv, textures)
    out = layout.image.copy()
    rw = out.shape[1] // 3
    r, c = np.divmod(layout.pixels, rw)
    out[r, rw + c] = _to_uint8(colors * layout.light[:, None])
    return out


def _colors_at(model: HeadModel, material: np.ndarray, uv: np.ndarray,
               textures: dict[int, np.ndarray]) -> np.ndarray:
    """Per pixel (N,) of ``material`` at texture coordinates ``uv`` (N,2, v up): its texture's nearest texel, or the
    material's base colour where it has no texture; (N,3) sRGB 0–255 in ``uv``'s float type."""
    colors = _base_colors(model).astype(uv.dtype)[material]
    for index, tex in textures.items():
        sel = np.flatnonzero(material == index)
        size = tex.shape[0]
        col = np.clip((uv[sel, 0] * size).astype(np.int64), 0, size - 1)
        row = np.clip(((1 - uv[sel, 1]) * size).astype(np.int64), 0, size - 1)
        colors[sel] = tex[row, col]
    return colors


@lru_cache(maxsize=4)
def _triangle_uv(model: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's corner UVs (T,3,2) float32 and its material index (T,)."""
    return (model.uv[split_quads(model.faces_uv)].astype(np.float32),
            model.face_material[model.triangle_face])


@lru_cache(maxsize=4)
def _base_colors(model: HeadModel) -> np.ndarray:
    """The materials' base colours (M,3) float32, sRGB 0–255."""
    return linear_to_srgb8(np.array([m.base_color[:3] for m in model.materials])).astype(np.float32)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0, 255).astype(np.uint8)
