"""The head as one photo's camera sees it: which triangle covers each pixel, and how far away it is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.camera import Camera
from ..model.headmodel import HeadModel
from .raster import rasterize


@dataclass(frozen=True)
class HeadRaster:
    """A per-pixel rasterisation of the head at ``scale`` × the photo's resolution.

    ``triangle`` indexes ``model.triangles`` (−1 = background), ``bary`` are the barycentric weights there,
    ``depth`` the distance in front of the camera in metres (inf = background).
    """

    triangle: np.ndarray  # (H,W) int32
    bary: np.ndarray  # (H,W,3) float32
    depth: np.ndarray  # (H,W) float64
    scale: float

    def at_pixels(self, model: HeadModel, per_vertex: np.ndarray) -> np.ndarray:
        """Per-vertex values (V,C) interpolated at the covered pixels (N,C), row-major order of the mask."""
        hit = self.triangle >= 0
        corners = model.triangles[self.triangle[hit]]
        return np.einsum("nk,nkc->nc", self.bary[hit].astype(np.float64), per_vertex[corners])

    def depth_at(self, px: np.ndarray) -> np.ndarray:
        """Depth buffer values at photo pixel positions (N,2)."""
        h, w = self.depth.shape
        col = np.clip((px[:, 0] * self.scale).astype(np.int64), 0, w - 1)
        row = np.clip((px[:, 1] * self.scale).astype(np.int64), 0, h - 1)
        return self.depth[row, col]


def rasterize_head(model: HeadModel, vertices_cam: np.ndarray, camera: Camera, max_side: int = 512) -> HeadRaster:
    """Rasterise the visible materials (alpha > 0) of the posed head, front faces only, nearest wins."""
    w, h = camera.size
    scale = min(1.0, max_side / max(w, h))
    visible = np.array([m.base_color[3] > 0 for m in model.materials])
    keep = np.flatnonzero(visible[model.face_material[model.triangle_face]])
    tris = model.triangles[keep]
    px, depth = camera.project(vertices_cam)
    corners = px[tris] * scale
    edge1, edge2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    facing = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0] < 0  # CCW outside looks clockwise, y down
    front = facing & (depth[tris] > 0).all(1)
    ids, bary = rasterize(corners[front], int(np.ceil(w * scale)), int(np.ceil(h * scale)), depth=depth[tris][front],
                          parts=2)
    hit = ids >= 0
    triangle = np.full(ids.shape, -1, np.int32)
    triangle[hit] = keep[front][ids[hit]]
    zbuf = np.full(ids.shape, np.inf)
    zbuf[hit] = (bary[hit] * depth[model.triangles[triangle[hit]]]).sum(1)
    return HeadRaster(triangle=triangle, bary=bary, depth=zbuf, scale=scale)
