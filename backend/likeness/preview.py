"""A quick look at a result without Blender: photo | textured head | shaded overlay with landmarks."""

from __future__ import annotations

import numpy as np

from .camera import Camera
from .headmodel import HeadModel, split_quads
from .raster import rasterize, vertex_normals

_HIDDEN_KINDS = ("overlay", "hair")


def render_view(model: HeadModel, vertices_cam: np.ndarray, camera: Camera,
                textures: dict[int, np.ndarray], max_side: int = 512) -> tuple[np.ndarray, np.ndarray, float]:
    """Render the head as the photo's camera sees it.

    Returns the textured colour (H,W,3) float in [0,255], a Lambert shading (H,W) in [0,1] (light from the
    camera) with NaN where the head is absent, and the scale from photo pixels to render pixels.
    """
    w, h = camera.size
    scale = min(1.0, max_side / max(w, h))
    rw, rh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
    visible = ~np.isin([m.kind for m in model.materials], _HIDDEN_KINDS)
    keep = np.flatnonzero(visible[model.face_material[model.triangle_face]])
    tris = model.triangles[keep]
    px, depth = camera.project(vertices_cam)
    front = (depth[tris] > 0).all(1)
    keep, tris = keep[front], tris[front]
    tri_ids, bary = rasterize(px[tris] * scale, rw, rh, depth=depth[tris])
    hit = tri_ids >= 0
    t = tri_ids[hit]
    b = bary[hit].astype(np.float64)

    normals = vertex_normals(vertices_cam, model.triangles)
    n = np.einsum("nk,nkd->nd", b, normals[tris[t]])
    p = np.einsum("nk,nkd->nd", b, vertices_cam[tris[t]])
    shade = np.full((rh, rw), np.nan)
    shade[hit] = np.clip(-(n * p).sum(1) / np.linalg.norm(p, axis=1), 0, 1)

    color = np.zeros((rh, rw, 3))
    uv_tris = split_quads(model.faces_uv)[keep[t]]
    uv = np.einsum("nk,nkd->nd", b, model.uv[uv_tris].astype(np.float64))
    material = model.face_material[model.triangle_face[keep[t]]]
    base = np.array([np.array(m.base_color[:3]) ** (1 / 2.2) * 255 for m in model.materials])
    colors = base[material]
    for index, tex in textures.items():
        sel = material == index
        size = tex.shape[0]
        col = np.clip((uv[sel, 0] * size).astype(int), 0, size - 1)
        row = np.clip(((1 - uv[sel, 1]) * size).astype(int), 0, size - 1)
        colors[sel] = tex[row, col]
    color[hit] = colors * (0.35 + 0.65 * shade[hit])[:, None]
    return color, shade, scale


def preview_image(photo: np.ndarray, model: HeadModel, vertices_cam: np.ndarray, camera: Camera,
                  textures: dict[int, np.ndarray], landmarks_px: np.ndarray) -> np.ndarray:
    """Three panels side by side (uint8): the photo, the textured head alone, the shaded head over the photo."""
    color, shade, scale = render_view(model, vertices_cam, camera, textures)
    rh, rw = shade.shape
    rows = np.minimum(((np.arange(rh) + 0.5) / scale).astype(int), photo.shape[0] - 1)
    cols = np.minimum(((np.arange(rw) + 0.5) / scale).astype(int), photo.shape[1] - 1)
    small = photo[rows][:, cols].astype(np.float64)
    hit = ~np.isnan(shade)
    alone = np.full_like(small, 40.0)
    alone[hit] = color[hit]
    overlay = small.copy()
    tint = np.array([120.0, 200.0, 255.0]) * np.nan_to_num(shade)[..., None]
    overlay[hit] = 0.45 * small[hit] + 0.55 * tint[hit]
    for x, y in landmarks_px * scale:
        r, c = int(y), int(x)
        overlay[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = (255, 60, 60)
    return np.clip(np.concatenate([small, alone, overlay], axis=1), 0, 255).astype(np.uint8)
