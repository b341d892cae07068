"""Ambient occlusion of the fitted head: how much of the sky each vertex sees, so a photo's shadowed creases are not
mistaken for dark skin.

A photo's pixel is albedo × the light that reaches the surface there. The SH light (:mod:`likeness.appearance.light`)
knows the surface's direction but not what the head itself hides from it: the eye sockets, the sides of the nose,
the nostrils, the corners of the mouth and the fold a smile raises get less light than their normals say. Left in
the albedo, that darkness is painted on twice in Blender (once in the texture, once by the renderer's own
occlusion, with a neutral face the fold is not even there): eyes look sunken and a smile's fold stays on a neutral
face. Dividing it out needs, per vertex, the share of the cosine-weighted hemisphere that the head leaves open.

It is computed like a shadow map from many directions at once: the head (every visible material, eyes and teeth
included) is rasterised orthographically along each of :data:`DIRECTIONS` directions spread over the sphere, and a
vertex facing a direction is open to it where nothing lies nearer in that direction's depth buffer. Positions in
metres, any frame (the result does not depend on it); vectorised NumPy, no per-vertex loops.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..model.headmodel import HeadModel
from .light import sphere_directions
from .raster import rasterize

#: Directions sampled over the sphere (each vertex uses the half it faces).
DIRECTIONS = 32
#: Depth buffer size (pixels) of each direction's view: about 1.5 mm per pixel over a 0.3 m head.
SIZE = 192
#: A vertex is open to a direction when nothing lies more than this (metres) in front of it: the surface's own
#: depth varies within a pixel, and a few millimetres of surface bending toward the light is not a shadow.
BIAS = 0.003
#: What hides the face from the light: the visible surfaces without the mouth's inside, the teeth and the irises
#: (behind the lips and inside the eyeballs), and without the back of the head (farther behind the 68 facial
#: landmarks' median depth than this, metres, in the model's neutral head frame) which the face cannot face.
_HIDDEN_MATERIALS = ("mouth", "teeth", "iris")
_BEHIND = 0.1


@lru_cache(maxsize=4)
def occluders(model: HeadModel) -> np.ndarray:
    """(T,3) vertex indices of the triangles that can hide part of the face from the light (see
    :data:`_HIDDEN_MATERIALS`, :data:`_BEHIND`)."""
    keep = np.array([m.base_color[3] > 0 and m.name not in _HIDDEN_MATERIALS for m in model.materials])
    tris = model.triangles[keep[model.face_material[model.triangle_face]]]
    depth = model.neutral[:, 2].astype(np.float64)  # the landmarks: the same cut on a bundle's fitted head
    front = depth[tris].mean(1) > np.median(depth[np.asarray(model.landmarks_68)]) - _BEHIND
    return tris[front]


def vertex_occlusion(model: HeadModel, vertices: np.ndarray, normals: np.ndarray,
                     directions: int = DIRECTIONS, size: int = SIZE) -> np.ndarray:
    """Ambient occlusion (V,) in [0, 1] of each vertex of the posed head: the cosine-weighted share of the
    hemisphere around its normal that the head (:func:`occluders`) does not hide (1 = fully open, a flat cheek).

    ``vertices`` (V,3) metres and unit ``normals`` (V,3) in one frame, e.g. the fitted head with its expression in
    the camera frame. About 12 ms per direction on one core.
    """
    vertices = np.asarray(vertices, np.float64)
    normals = np.asarray(normals, np.float64)
    if vertices.shape != normals.shape or vertices.shape != (model.vertex_count, 3):
        raise ValueError(f"expected ({model.vertex_count}, 3) vertices and normals, got {vertices.shape} and "
                         f"{normals.shape}")
    if not (np.isfinite(vertices).all() and np.isfinite(normals).all()):
        raise ValueError("the head's vertices or normals are not finite")
    tris = occluders(model)
    centre = vertices.mean(0)
    rel = vertices - centre
    radius = float(np.linalg.norm(rel, axis=1).max())
    if radius <= 0:
        raise ValueError("the head's vertices all coincide")
    scale = (size - 2) / (2 * radius)  # pixels per metre: the whole head fits in every view
    open_sum = np.zeros(len(vertices))
    weight_sum = np.zeros(len(vertices))
    for d in sphere_directions(directions):
        facing = np.maximum(normals @ d, 0.0)
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        px = np.stack([rel @ u, rel @ np.cross(d, u)], 1) * scale + size / 2
        depth = -(rel @ d)  # smaller = nearer to the sky in direction d
        ids, bary = rasterize(px[tris], size, size, depth=depth[tris])
        hit = ids >= 0
        zbuf = np.full(ids.shape, np.inf)
        zbuf[hit] = (bary[hit] * depth[tris[ids[hit]]]).sum(1)
        col = np.clip(px[:, 0].astype(np.int64), 0, size - 1)
        row = np.clip(px[:, 1].astype(np.int64), 0, size - 1)
        open_sum += facing * (depth <= zbuf[row, col] + BIAS)
        weight_sum += facing
    return np.where(weight_sum > 0, open_sum / np.maximum(weight_sum, 1e-12), 1.0)


def effective_occlusion(occlusion: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """The share of the open-sky light that reaches a surface with ambient occlusion ``occlusion`` (N,) once the
    light bouncing inside the crease is counted, per colour channel for a surface of linear ``albedo`` (3,) or
    (N,3), as (N,3): Jimenez et al. 2016's multi-bounce fit ("Practical real-time strategies for accurate
    indirect occlusion"):
    skin's red bounces more, so a crease darkens its blue more than its red."""
    rho = np.atleast_2d(np.asarray(albedo, np.float64))
    a, b, c = 2.0404 * rho - 0.3324, -4.7951 * rho + 0.6417, 2.7552 * rho + 0.6903
    x = np.asarray(occlusion, np.float64)[:, None]
    return np.clip(np.maximum(((a * x + b) * x + c) * x, x), 0.0, 1.0)
