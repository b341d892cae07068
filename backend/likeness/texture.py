"""Project the photos onto the head's UV layout (colour textures, sRGB).

For each texel of a projected material we know the surface point (from a UV-space rasterisation, computed once
per model and texture size), project it into every photo, and keep it where the photo sees it: in front of the
camera, not hidden by other parts of the head (a depth buffer per photo) and facing the camera. Photos are
blended with weight cos²(view angle). Texels no photo saw get a skin tone estimated from the well-seen face,
blended smoothly; the colour is spread a few texels beyond the UV islands so filtering shows no seams.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage, sparse

from .camera import Camera
from .headmodel import HeadModel, split_quads
from .raster import rasterize, vertex_normals

#: Materials whose surface hides what is behind it in a photo.
_OCCLUDER_KINDS = ("skin", "mouth", "teeth", "eye", "hair")
#: Colour is spread this many texels past the UV islands.
_MARGIN = 8


@dataclass(frozen=True)
class UVMap:
    """Texel → surface lookup for one material at one texture size.

    The N texels inside the UV islands are listed in ``texels`` (flat indices into the S×S grid); each is a
    blend of three vertices, the rows of the sparse (N,V) matrix ``blend``. ``nearest`` gives, for every texel of the grid, the
    texel (index into the N) closest to each outside texel (``outside``, flat indices), used to spread colour
    past the island borders; ``far`` marks outside texels too far from any island to borrow a colour.
    """

    size: int
    texels: np.ndarray  # (N,) int64
    blend: sparse.csr_matrix  # (N,V) barycentric weights, 3 per row
    outside: np.ndarray  # (M,) int64
    nearest: np.ndarray  # (M,) int32
    far: np.ndarray  # (M,) bool


@dataclass(frozen=True)
class PhotoView:
    """One photo with the fitted head in camera space."""

    rgb: np.ndarray  # (H,W,3) uint8
    camera: Camera
    vertices_cam: np.ndarray  # (V,3) head vertices in the camera frame, metres


def uv_map(model: HeadModel, material: int, size: int) -> UVMap:
    """Rasterise a material's triangles in UV space (cached per model, material and size)."""
    return _uv_map_cached(model, material, size)


@lru_cache(maxsize=8)
def _uv_map_cached(model: HeadModel, material: int, size: int) -> UVMap:
    keep = np.flatnonzero(model.face_material[model.triangle_face] == material)
    corners = model.uv[split_quads(model.faces_uv)[keep]].astype(np.float64) * size
    corners[..., 1] = size - corners[..., 1]  # v up → rows down
    local, bary = rasterize(corners, size, size)
    inside = local >= 0
    texels = np.flatnonzero(inside)
    compact = np.full(size * size, -1, np.int32)
    compact[texels] = np.arange(len(texels), dtype=np.int32)
    dist, (rows, cols) = ndimage.distance_transform_edt(~inside, return_indices=True)
    vertex_ids = model.triangles[keep][local.ravel()[texels]]
    blend = sparse.csr_matrix((bary.reshape(-1, 3)[texels].ravel(), vertex_ids.ravel(),
                               np.arange(0, 3 * len(texels) + 1, 3)), shape=(len(texels), model.vertex_count))
    outside = np.flatnonzero(~inside)
    return UVMap(size=size, texels=texels, blend=blend, outside=outside,
                 nearest=compact[(rows * size + cols).ravel()[outside]], far=dist.ravel()[outside] > _MARGIN)


def depth_buffer(model: HeadModel, view: PhotoView, max_side: int = 1024) -> tuple[np.ndarray, float]:
    """Nearest distance of the opaque head per pixel (at most ``max_side`` wide), and the buffer's scale."""
    w, h = view.camera.size
    scale = min(1.0, max_side / max(w, h))
    occluder = np.isin([model.materials[m].kind for m in range(len(model.materials))], _OCCLUDER_KINDS)
    tris = model.triangles[occluder[model.face_material[model.triangle_face]]]
    px, depth = view.camera.project(view.vertices_cam)
    corners = px[tris] * scale
    front = (depth[tris] > 0).all(1)
    tri_ids, bary = rasterize(corners[front], int(np.ceil(w * scale)), int(np.ceil(h * scale)),
                              depth=depth[tris][front])
    zbuf = np.full(tri_ids.shape, np.inf)
    hit = tri_ids >= 0
    zbuf[hit] = (bary[hit] * depth[tris][front][tri_ids[hit]]).sum(1)
    return zbuf, scale


def vertex_projection(model: HeadModel, view: PhotoView) -> tuple[np.ndarray, np.ndarray]:
    """Where each vertex lands in the photo (V,2 pixels) and how well the photo sees it (V,) in [0, 1].

    The weight is cos²(angle between the surface normal and the view ray) where the vertex is in front of the
    camera, on the image and not hidden by the head itself (depth buffer, 4 mm tolerance), else 0.
    """
    verts = view.vertices_cam
    px, depth = view.camera.project(verts)
    normals = vertex_normals(verts, model.triangles)
    facing = -(normals * verts).sum(1) / np.maximum(np.linalg.norm(verts, axis=1), 1e-9)
    zbuf, zscale = depth_buffer(model, view)
    zh, zw = zbuf.shape
    zx = np.clip((px[:, 0] * zscale).astype(np.int64), 0, zw - 1)
    zy = np.clip((px[:, 1] * zscale).astype(np.int64), 0, zh - 1)
    w, h = view.camera.size
    on_image = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    visible = on_image & (depth > 0) & (depth <= zbuf[zy, zx] + 0.004) & (facing > 0.05)
    return px.astype(np.float32), np.where(visible, np.clip(facing, 0, 1) ** 2, 0.0).astype(np.float32)


def bake_textures(model: HeadModel, views: list[PhotoView], size: int) -> dict[int, np.ndarray]:
    """Colour textures (S,S,3) uint8 of every projected material, by material index.

    Texels no photo saw get the skin tone of the well-seen face. Materials bake in parallel threads (the heavy
    NumPy/OpenCV work releases the GIL).
    """
    projections = [(view.rgb, *vertex_projection(model, view)) for view in views]
    fill = skin_tone(model, projections)
    materials = [i for i, m in enumerate(model.materials) if m.projected]
    with ThreadPoolExecutor(max_workers=min(2, len(materials) or 1)) as pool:
        images = pool.map(lambda i: _bake_material(uv_map(model, i, size), projections, fill), materials)
        return dict(zip(materials, images))


def _bake_material(uvm: UVMap, projections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   fill_color: np.ndarray) -> np.ndarray:
    """Colour texture (S,S,3) uint8 of one material.

    Pixel positions and weights are interpolated linearly from the vertices across each (small) triangle.
    """
    n = len(uvm.texels)
    color_sum = np.zeros((n, 3), np.float32)
    weight_sum = np.zeros(n, np.float32)
    for rgb, px, weight in projections:
        table = np.concatenate([px - 0.5, weight[:, None]], axis=1).astype(np.float32)  # (V,3): x, y, w
        values = uvm.blend @ table
        sample = _remap(rgb, values[:, 0], values[:, 1])
        color_sum += values[:, 2:3] * sample
        weight_sum += values[:, 2]
    projected = color_sum / np.maximum(weight_sum, 1e-6)[:, None]
    alpha = np.clip(weight_sum / 0.15, 0.0, 1.0)[:, None]  # fade into the fill at grazing angles
    projected -= fill_color
    projected *= alpha
    projected += fill_color + 0.5
    colors = np.clip(projected, 0, 255, out=projected).astype(np.uint8)
    image = np.empty((uvm.size * uvm.size, 3), np.uint8)
    image[uvm.texels] = colors
    border = colors[uvm.nearest]  # outside texels take their nearest island texel: no seams under filtering
    border[uvm.far] = np.round(fill_color).astype(np.uint8)
    image[uvm.outside] = border
    return image.reshape(uvm.size, uvm.size, 3)


def _remap(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples (N,3) of an image at pixel positions (centres at integers), edges clamped."""
    n, width = len(x), 4096  # OpenCV maps must be narrower than 32767 in both directions
    pad = (-n) % width
    maps = [np.pad(v, (0, pad)).reshape(-1, width) for v in (x, y)]
    out = cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n]


def skin_tone(model: HeadModel, projections: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Median photo colour (RGB float32, 0–255) at the face vertices the photos see well (weight ≥ 0.5).

    Falls back to a neutral skin tone when no photo sees enough of the face.
    """
    face = slice(0, model.face_vertex_count)
    samples = [_remap(rgb, px[face, 0][weight[face] >= 0.5] - 0.5, px[face, 1][weight[face] >= 0.5] - 0.5)
               for rgb, px, weight in projections]
    colors = np.concatenate(samples) if samples else np.zeros((0, 3))
    if len(colors) < 50:
        return np.array([200.0, 160.0, 140.0], np.float32)
    return np.median(colors, axis=0).astype(np.float32)
