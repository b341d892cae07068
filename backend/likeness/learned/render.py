"""Photo-like renders of the head model for training, in NumPy (the product's own rasteriser; no GPU, no bpy).

A render is the posed head (identity, expression, eyeballs turned for gaze) seen through a pinhole camera in the
bundle's conventions (:mod:`likeness.model.camera`), shaded per pixel with a soft key light (wrapped Lambert plus a
Blinn–Phong highlight), a coloured fill, a cast-shadow map from the key light, and a cluttered backdrop; then
lens blur, sensor noise, optional JPEG and an optional occluder. Colours are linear until the sRGB encode at the
end. Optionally (the third training set) the head's ambient occlusion darkens its fill light and, as much as the
key light is soft, its key (eye sockets, the lids' shadow on the eyes, nostrils, the lips' seam, a smile's fold:
what a photo's light and Cycles' bounces show), and the backdrop is a plain studio gradient. Helper shells (eyelash
cards, eye overlays, the clear cornea) are not drawn, as in the Cycles benchmark.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ..model.camera import Camera
from ..model.headmodel import HeadModel
from ..appearance.occlusion import effective_occlusion, vertex_occlusion
from ..appearance.raster import rasterize, vertex_normals
from .skins import Skin

HIDDEN_KINDS = ("overlay", "hair", "cornea")


@dataclass(frozen=True)
class Lighting:
    """Light in the camera frame (+Z toward the camera): key direction (unit, toward the light), colours."""

    key_direction: np.ndarray  # (3,)
    key: np.ndarray  # (3,) linear RGB intensity
    fill: np.ndarray  # (3,) ambient
    specular: float  # highlight strength
    wrap: float  # 0: hard Lambert, 1: very soft (subsurface-like)


def drawn_triangles(model: HeadModel) -> np.ndarray:
    """The model's triangles (T,3) a training render draws: all but the :data:`HIDDEN_KINDS` materials'."""
    kinds = np.array([m.kind for m in model.materials])
    return model.triangles[~np.isin(kinds[model.face_material[model.triangle_face]], HIDDEN_KINDS)]


class HeadRenderer:
    """Renders one head model; the visible triangles and their materials are prepared once."""

    def __init__(self, model: HeadModel) -> None:
        self.model = model
        self.triangles = drawn_triangles(model)
        self._eyeballs = model.eyeball_mask()

    def render(self, verts: np.ndarray, skin: Skin, rotation: np.ndarray, translation: np.ndarray,
               camera: Camera, light: Lighting, rng: np.random.Generator, occluder: bool = False,
               occlusion: bool = False, plain: bool = False, eye_occlusion: float = 1.0) -> np.ndarray:
        """RGB uint8 (H,W,3) of the head ``verts`` (V,3 head frame, m) at pose (rotation, translation);
        ``occluder`` draws an object over part of the lower face; ``occlusion`` shades with the head's ambient
        occlusion, on the eyeballs only this share of it (the socket around them otherwise darkens the whole
        sclera, which photos show bright); ``plain`` gives a studio backdrop."""
        width, height = camera.size
        cam_pts = verts @ rotation.T + translation
        px, depth = camera.project(cam_pts)
        tris = _facing(self.triangles, px, width, height)
        tri_map, bary = rasterize(px[tris], width, height, depth[tris])
        covered = tri_map >= 0
        image = plain_backdrop(width, height, rng) if plain else backdrop(width, height, rng)
        if covered.any():
            t = tris[tri_map[covered]]
            b = bary[covered][..., None]
            normals = vertex_normals(cam_pts, tris)
            n = (normals[t] * b).sum(1)
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
            albedo = (skin.albedo[t] * b).sum(1)
            gloss = (skin.gloss[t] * b[..., 0]).sum(1)
            point = (cam_pts[t] * b).sum(1)
            keyed, fill = self._shade(n, point, albedo, gloss, light)
            if occlusion:
                ao = self._occlusion(cam_pts)
                if eye_occlusion != 1.0:
                    ao[self._eyeballs] = 1.0 - eye_occlusion * (1.0 - ao[self._eyeballs])
                ao = (ao[t] * b[..., 0]).sum(1)
                fill = fill * effective_occlusion(ao, albedo)
                keyed = keyed * (1.0 - light.wrap * (1.0 - ao))[:, None]  # a soft key is partly a sky
            shadow = self._shadow(cam_pts, point, light)
            image[covered] = keyed * (1 - 0.85 * shadow[:, None]) + fill
        if occluder:
            face = px[self.model.landmarks_68]
            image = occlude(image, (*face.min(0), *face.max(0)), rng)
        return finish(image, rng)

    @staticmethod
    def _shade(n: np.ndarray, point: np.ndarray, albedo: np.ndarray, gloss: np.ndarray,
               light: Lighting) -> tuple[np.ndarray, np.ndarray]:
        """(key-lit colour that a shadow darkens, fill-lit colour that it does not), each (N,3) linear."""
        to_eye = -point / np.maximum(np.linalg.norm(point, axis=1, keepdims=True), 1e-9)
        cos = n @ light.key_direction
        diffuse = np.clip((cos + light.wrap) / (1 + light.wrap), 0, None)
        half = light.key_direction + to_eye
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        spec = light.specular * gloss * np.clip((n * half).sum(1), 0, None) ** (20 + 80 * gloss) * (cos > 0)
        facing = np.clip((n * to_eye).sum(1), 0, 1)
        fill = albedo * light.fill * (0.6 + 0.4 * facing[:, None])
        keyed = albedo * diffuse[:, None] * light.key + spec[:, None] * light.key
        return keyed, fill

    def _occlusion(self, cam_pts: np.ndarray) -> np.ndarray:
        """Ambient occlusion (V,) of the posed head (:func:`likeness.appearance.occlusion.vertex_occlusion`), at
        16 directions and 128 px (about 0.1 s; a training render needs the creases, not the last percent)."""
        normals = vertex_normals(cam_pts, self.model.triangles)
        return vertex_occlusion(self.model, cam_pts, normals, directions=16, size=128)

    def _shadow(self, cam_pts: np.ndarray, point: np.ndarray, light: Lighting, size: int = 200) -> np.ndarray:
        """Soft-ish cast shadow (N,) in [0, 1] of the head on itself from the key light (orthographic map)."""
        d = light.key_direction / np.linalg.norm(light.key_direction)
        up = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(up, d)
        u /= np.linalg.norm(u)
        w = np.cross(d, u)
        basis = np.stack([u, w])
        flat = cam_pts @ basis.T
        lo, hi = flat.min(0), flat.max(0)
        scale = (size - 1) / max(float((hi - lo).max()), 1e-9)
        grid = (flat - lo) * scale
        toward = cam_pts @ d  # larger = nearer the light
        # (u, w, d) is right-handed like the camera's (x, y, z): seen from the light, the grid's y runs up
        tris = _facing(self.triangles, grid, size, size, flip_y=False)
        tri_map, bary = rasterize(grid[tris], size, size, -toward[tris])
        near = np.full((size, size), -np.inf)
        hit = tri_map >= 0
        near[hit] = (toward[tris[tri_map[hit]]] * bary[hit]).sum(1)
        q = (point @ basis.T - lo) * scale
        col = np.clip(np.round(q[:, 0]).astype(int), 0, size - 1)
        row = np.clip(np.round(q[:, 1]).astype(int), 0, size - 1)
        bias = 0.012  # metres: larger than a map texel, so lit skin does not shadow itself
        occluded = near[row, col] > point @ d + bias
        return occluded.astype(np.float64)


def _facing(tris: np.ndarray, px: np.ndarray, width: int, height: int, flip_y: bool = True) -> np.ndarray:
    """The triangles that face the viewer (counter-clockwise on screen, y up) and touch the image."""
    a, b, c = px[tris[:, 0]], px[tris[:, 1]], px[tris[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    front = cross < 0 if flip_y else cross > 0  # pixel rows run down: counter-clockwise turns clockwise
    lo, hi = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
    inside = (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < width) & (lo[:, 1] < height)
    return tris[front & inside]


def backdrop(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) linear backdrop: a two-colour gradient with soft blobs (made at a quarter of the size), and a
    few hard-edged shapes."""
    top, bottom = rng.uniform(0.0, 0.7, 3) ** 1.5, rng.uniform(0.0, 0.6, 3) ** 1.5
    angle = rng.uniform(-0.6, 0.6)
    small_w, small_h = max(width // 4, 1), max(height // 4, 1)
    yy, xx = np.mgrid[0:small_h, 0:small_w] / max(small_w, small_h)
    t = np.clip(yy * np.cos(angle) + xx * np.sin(angle), 0, 1)[..., None]
    image = top * (1 - t) + bottom * t
    for _ in range(rng.integers(0, 6)):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.4)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - 0.6 * blob) + 0.6 * blob * rng.uniform(0, 0.6, 3) ** 1.5
    image = np.stack([np.asarray(Image.fromarray(image[..., k].astype(np.float32)).resize((width, height),
                                                                                      Image.BILINEAR))
                      for k in range(3)], -1).astype(np.float64)
    side = max(width, height)
    for _ in range(rng.integers(0, 4)):
        x0, y0 = (rng.uniform(0, 1, 2) * side).astype(int)
        x1, y1 = x0 + int(rng.uniform(0.05, 0.5) * side), y0 + int(rng.uniform(0.05, 0.5) * side)
        image[y0:y1, x0:x1] = rng.uniform(0, 0.7, 3) ** 1.5
    return image


def plain_backdrop(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) linear studio backdrop: a soft vertical gradient of one grey or muted colour, lighter at the top."""
    base = rng.uniform(0.05, 0.6) * (1 + rng.uniform(-0.12, 0.12, 3))
    fall = rng.uniform(0.5, 1.0)
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    return np.broadcast_to(base * (1 - (1 - fall) * t), (height, width, 3)).astype(np.float64).copy()


def occlude(image: np.ndarray, box: tuple[float, float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Draw one opaque ellipse (a hand, a cup, a microphone) over part of the face box (x0, y0, x1, y1), linear."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0 + 0.5 * (y1 - y0), y1 + 0.2 * size)
    rx, ry = rng.uniform(0.1, 0.25) * size, rng.uniform(0.1, 0.3) * size
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    out = image.copy()
    out[inside] = rng.uniform(0.02, 0.6, 3)
    return out


def finish(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, sRGB encoding, lens blur, sensor noise and sometimes JPEG: (H,W,3) linear → uint8."""
    exposure = rng.uniform(0.8, 1.25)
    srgb = np.clip(linear * exposure, 0, 1)
    srgb = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * np.power(srgb, 1 / 2.4) - 0.055)
    img = Image.fromarray((srgb * 255 + 0.5).astype(np.uint8))
    blur = rng.uniform(0.3, 1.4) if rng.random() < 0.85 else rng.uniform(1.4, 2.5)
    img = img.filter(ImageFilter.GaussianBlur(blur))
    out = np.asarray(img, np.float64)
    out += rng.normal(0, rng.uniform(0.5, 5.0), out.shape)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=int(rng.integers(35, 96)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out
