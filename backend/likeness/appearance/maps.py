"""Surface maps besides colour: a tangent-space normal map of skin detail, and roughness by face region.

Both are laid out in a material's UV tile like its albedo texture (``uv_map``), so Blender's Normal Map node
(tangent space, UV map 'UVMap') and an Image Texture on Roughness read them directly (colour space Non-Color).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..model.headmodel import HeadModel
from .light import SRGB8_TO_LINEAR
from .png import encode_png
from ..model.regions import ROUGHNESS, vertex_regions
from .texture import uv_map

#: Skin detail (pores, wrinkles, creases) is read from the albedo's luminance below this scale (fraction of the
#: texture side): darker than the surroundings = deeper.
DETAIL_SCALE = 1 / 300
#: Height (texels) per unit of log-luminance contrast; sets how strongly the detail bends the normals.
DETAIL_DEPTH = 1.5
#: Roughness maps are this many times smaller than the albedo (roughness varies slowly).
ROUGHNESS_DOWNSCALE = 4


def normal_map(albedo_rgb: np.ndarray) -> np.ndarray:
    """Tangent-space normal map (S,S,3) uint8 (+X = +U, +Y = +V, blue up) from an albedo texture (S,S,3) sRGB.

    Shape from shading at the detail scale only: the high-pass of the log luminance is taken as height (darker
    than the surroundings = deeper), whose UV gradient bends the flat normal. Large shapes come from the mesh.
    """
    size = albedo_rgb.shape[0]
    log_lum = cv2.LUT(cv2.cvtColor(albedo_rgb, cv2.COLOR_RGB2GRAY), _LOG_LUMINANCE)
    small = max(size // 4, 1)  # the low-pass is smooth: blur a quarter-size copy (10× faster)
    low = cv2.GaussianBlur(cv2.resize(log_lum, (small, small), interpolation=cv2.INTER_AREA), (0, 0),
                           max(small * DETAIL_SCALE, 0.5))
    low = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    height = cv2.subtract(log_lum, low) * np.float32(DETAIL_DEPTH / 8.0)
    du = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3)
    dv = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)  # rows run down, V runs up: +V slope is −dv
    np.clip(du, -2.0, 2.0, out=du)
    np.clip(dv, -2.0, 2.0, out=dv)
    z = du * du  # z = 127.5 / sqrt(1 + du² + dv²), in place (fewer 4-byte-per-texel temporaries)
    z += 1.0
    z += dv * dv
    z = cv2.sqrt(z)
    np.divide(np.float32(127.5), z, out=z)
    du *= z
    dv *= z
    x = cv2.convertScaleAbs(np.subtract(np.float32(127.5), du, out=du))
    y = cv2.convertScaleAbs(np.add(dv, np.float32(127.5), out=dv))
    return cv2.merge([x, y, cv2.convertScaleAbs(np.add(z, np.float32(127.5), out=z))])


#: sRGB grey level → log of its linear luminance.
_LOG_LUMINANCE = np.log(np.maximum(SRGB8_TO_LINEAR, 1e-3)).astype(np.float32).reshape(256, 1)


@lru_cache(maxsize=16)
def has_face_detail(model: HeadModel, material: int) -> bool:
    """Whether a material is mostly the face region (only those get a detail normal map: elsewhere, hair and
    stubble would read as bumps, and what no photo saw has no detail to show)."""
    tris = model.triangles[model.face_material[model.triangle_face] == material]
    return bool(len(tris)) and float((tris < model.face_vertex_count).all(1).mean()) > 0.5


def roughness_map(model: HeadModel, material: int, size: int) -> np.ndarray:
    """Roughness (s,s) uint8 (0–255 ↔ 0–1, linear) of a projected material from its vertices' face regions.

    ``s`` is ``size // ROUGHNESS_DOWNSCALE`` (at least 16); region borders are blended over a few texels.
    """
    small = max(size // ROUGHNESS_DOWNSCALE, 16)
    uvm = uv_map(model, material, small)
    per_vertex = np.array([ROUGHNESS[r] for r in range(len(ROUGHNESS))], np.float32)[vertex_regions(model)]
    values = np.full(small * small, ROUGHNESS[0], np.float32)
    values[uvm.texels] = uvm.blend @ per_vertex
    values[uvm.outside] = values[uvm.texels][uvm.nearest]
    image = cv2.GaussianBlur(values.reshape(small, small), (0, 0), 1.5)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


@lru_cache(maxsize=16)
def roughness_png(model: HeadModel, material: int, size: int) -> bytes:
    """:func:`roughness_map` encoded as PNG; it depends on the model only, so every job reuses the file."""
    return encode_png(roughness_map(model, material, size))
