"""Delighting: estimate each photo's light on the fitted head and divide it out, leaving albedo.

Works in the photo (image space), before the UV bake: every pixel the head covers is divided by the shading the
estimated SH light gives its surface normal, in linear RGB. The bake then blends these albedo photos exactly as
it blends plain photos, so several photos under different lights agree. Pixels brighter than the skin can be
(specular highlights) are pulled back towards the skin's albedo; shading below :data:`~.light.MIN_SHADING`
(deep or cast shadow) is not trusted and is divided by that floor instead. With ``occlusion=True`` (the job's
``occlusion`` option, off by default) the light the head hides from itself (its ambient occlusion, with the light
bouncing inside creases: :mod:`~.occlusion`) is divided out too, so eye sockets, the sides of the nose and a smile's
fold are not painted darker than the skin is. Cast shadows of
a directional light are not modelled: a nose shadow under a hard side light remains slightly darker in the albedo.

Several photos of one job are then brought to one skin tone (:func:`match_tones`): each photo's colour cast and
exposure, relative to what the photos agree on, moves from its albedo into its light.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from . import light as sh
from ..model.headmodel import HeadModel
from ..model.regions import SKIN, vertex_regions
from .occlusion import effective_occlusion, vertex_occlusion
from .texture import PhotoView

#: Fewer well-seen skin vertices than this and the light is taken as uniform (nothing is divided out).
MIN_SKIN_SAMPLES = 50
#: Albedo may exceed the skin's median albedo by this factor at most (beyond it: highlight, pulled back).
MAX_OVER_SKIN = 1.6
_HIGHLIGHT_SOFTNESS = 0.15
#: Raster pixels kept around the head for its shading image (the resize reads at most about 4 beyond it).
_CROP_MARGIN = 8


@dataclass(frozen=True)
class Delit:
    """One photo after delighting: the albedo photo (sRGB uint8) and the light in the camera and head frames."""

    albedo_rgb: np.ndarray  # (H,W,3) uint8, sRGB; outside the head's bounding box the photo's pixels
    light_camera: np.ndarray  # (9,3) SH, camera frame (+X image right, +Y image up, +Z towards the viewer)
    light_head: np.ndarray  # (9,3) SH, head frame (+X subject's left, +Y up, +Z out of the face)
    skin_albedo: np.ndarray  # (3,) linear RGB median albedo of the seen skin
    skin_samples: int = 0  # how many well-seen skin vertices the light and ``skin_albedo`` rest on
    occlusion: bool = False  # whether the head's own occlusion was divided out too (:func:`delight`)


def delight(model: HeadModel, view: PhotoView, rotation: np.ndarray, occlusion: bool = False) -> Delit:
    """Estimate the light of one photo from its fitted head and divide it out of the pixels the head covers.

    ``rotation`` is the head-to-camera rotation of the fit (3×3), used to express the light in the head frame.
    With ``occlusion`` the light that the head hides from itself (eye sockets, the sides of the nose, a smile's
    fold: :mod:`likeness.appearance.occlusion`) is divided out too, so a renderer, which adds its own occlusion,
    does not darken those places twice; without it (a photo drawn by a renderer without occlusion) only the SH light.
    """
    normals, px, weight = view.normals, view.px, view.visibility
    skin = (vertex_regions(model) == SKIN) & (np.arange(model.vertex_count) < model.face_vertex_count)
    use = skin & (weight > 0.4)  # away from the silhouette (stray hair and background)
    if view.skin is not None:  # and where the photo's pixel is skin (likeness.capture.segment): no fringe, no hand
        use[use] = view.skin_at_vertices()[use] > 0.5
    colors = _sample_linear(view.rgb, px[use])
    light_camera, skin_albedo = _light_and_skin(colors, normals[use], weight[use], np.ones((int(use.sum()), 3)))
    reach = None  # (V,3) share of the open-sky light reaching each vertex
    if occlusion and use.sum() >= MIN_SKIN_SAMPLES:
        reach = effective_occlusion(vertex_occlusion(model, view.vertices_cam, normals), skin_albedo)
        light_camera, skin_albedo = _light_and_skin(colors, normals[use], weight[use], reach[use])
    shade = _shading_image(model, view, light_camera, reach)
    albedo = _divide(view.rgb, shade, skin_albedo)
    return Delit(albedo, light_camera, sh.rotate(light_camera, np.asarray(rotation).T), skin_albedo, int(use.sum()),
                 reach is not None)


def _light_and_skin(colors: np.ndarray, normals: np.ndarray, weights: np.ndarray,
                    reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The SH light (camera frame) and the skin's median linear albedo (3,) from skin samples: linear ``colors``
    (N,3), unit ``normals`` (N,3), view weights (N,) and the share (N,3) of the light that reaches each sample."""
    if len(colors) < MIN_SKIN_SAMPLES:  # too little skin seen to tell the light: leave the photo as it is
        light = sh.directional([0.0, 0.0, 1.0], strength=0.0, ambient=1.0)
    else:
        light = sh.estimate(colors / np.maximum(reach, sh.MIN_SHADING), normals, weights)
    if not len(colors):
        return light, np.full(3, 0.5, np.float32)
    shading = np.maximum(sh.shading(light, normals) * reach, sh.MIN_SHADING)
    return light, np.median(colors / shading, axis=0)


#: When the photos of a job are matched, a photo's exposure (luminance) moves by at most this factor, and its
#: colour (each channel relative to the luminance) by at most :data:`MAX_CAST_GAIN`.
MAX_EXPOSURE_GAIN = 8.0
MAX_CAST_GAIN = 2.0


def match_tones(delit: list[Delit]) -> list[Delit]:
    """Photos of one person brought to one skin tone: each photo's albedo is scaled per channel (linear RGB) so
    that its skin's median albedo becomes the photos' consensus, and its light by the inverse, so that albedo ×
    light still gives the photo.

    One light's colour and one camera's white balance cannot be told from the skin's own colour (the light is
    estimated white, :mod:`.light`), but between photos of one person they can: the same skin photographed
    under a warm webcam and a cool daylight window differs only by them. Without this, the bake blends the
    photos into patches of two tones (the neck from one photo, the forehead from another). The consensus is
    the geometric mean of the photos' skin albedos, each weighted by the skin it saw; photos that saw too little
    skin (under :data:`MIN_SKIN_SAMPLES`) neither vote nor move. One photo (or photos that agree already) is
    returned unchanged, pixel for pixel.
    """
    voters = [d for d in delit if d.skin_samples >= MIN_SKIN_SAMPLES]
    if len(voters) < 2:
        return delit
    votes = np.array([d.skin_samples for d in voters], np.float64)
    logs = np.log(np.maximum(np.array([d.skin_albedo for d in voters], np.float64), 1e-4))
    consensus = np.exp(votes @ logs / votes.sum())
    out = []
    for d in delit:
        if d.skin_samples < MIN_SKIN_SAMPLES:
            out.append(d)
            continue
        gain = _tone_gain(np.maximum(d.skin_albedo, 1e-4), consensus)
        if np.allclose(gain, 1.0, atol=1e-3):
            out.append(d)
            continue
        # a per-channel table on the sRGB bytes: linear × gain, back to sRGB (what dividing a coloured light does)
        tables = sh.linear_to_srgb8(sh.SRGB8_TO_LINEAR[:, None] * gain[None, :].astype(np.float32))
        rgb = np.stack([cv2.LUT(d.albedo_rgb[..., c], tables[:, c]) for c in range(3)], axis=-1)
        out.append(Delit(rgb, d.light_camera / gain, d.light_head / gain, d.skin_albedo * gain,
                         d.skin_samples, d.occlusion))
    return out


def _tone_gain(own: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-channel factor (3,) taking the skin albedo ``own`` to ``target`` (linear RGB): exposure and colour cast
    clipped separately, so an underexposed photo can be brightened a lot without its colour being bent."""
    lum = sh.LUMINANCE
    exposure = np.clip((target @ lum) / (own @ lum), 1 / MAX_EXPOSURE_GAIN, MAX_EXPOSURE_GAIN)
    cast = np.clip((target / (target @ lum)) / (own / (own @ lum)), 1 / MAX_CAST_GAIN, MAX_CAST_GAIN)
    return exposure * cast


def _sample_linear(rgb: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Linear RGB (N,3) of the photo at pixel positions (N,2), nearest pixel."""
    h, w = rgb.shape[:2]
    col = np.clip(np.round(px[:, 0] - 0.5).astype(np.int64), 0, w - 1)
    row = np.clip(np.round(px[:, 1] - 0.5).astype(np.int64), 0, h - 1)
    return sh.SRGB8_TO_LINEAR[rgb[row, col]]


def _shading_image(model: HeadModel, view: PhotoView, light: np.ndarray, reach: np.ndarray | None = None) -> tuple:
    """Shading (h,w,3) float32 over the head's bounding box in the photo, and that box (x0, y0, x1, y1).

    Computed at the raster's resolution from interpolated vertex normals (times the interpolated share of the
    light that reaches each vertex, ``reach`` (V,3), where given), extended past the silhouette with
    the nearest covered value, then resized to the photo's pixels. Only the raster around the head is worked on
    (every covered pixel, and the nearest covered pixel of every pixel the resize reads, lie in it).
    """
    raster = view.raster
    covered = raster.triangle >= 0
    rows, cols = np.flatnonzero(covered.any(1)), np.flatnonzero(covered.any(0))
    if rows.size == 0:
        return np.ones((0, 0, 3), np.float32), (0, 0, 0, 0)
    h, w = view.rgb.shape[:2]
    s = raster.scale
    box = (max(int(cols[0] / s) - 2, 0), max(int(rows[0] / s) - 2, 0),
           min(int(np.ceil((cols[-1] + 1) / s)) + 2, w), min(int(np.ceil((rows[-1] + 1) / s)) + 2, h))
    r0, c0 = max(rows[0] - _CROP_MARGIN, 0), max(cols[0] - _CROP_MARGIN, 0)
    r1, c1 = rows[-1] + 1 + _CROP_MARGIN, cols[-1] + 1 + _CROP_MARGIN
    hit = covered[r0:r1, c0:c1]  # holds every covered pixel, in the same row-major order as the whole raster
    n = raster.at_pixels(model, view.normals)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    small = np.zeros((*hit.shape, 3), np.float32)
    small[hit] = sh.shading(light, n) if reach is None else sh.shading(light, n) * raster.at_pixels(model, reach)
    _, (near_r, near_c) = ndimage.distance_transform_edt(~hit, return_indices=True)
    small = small[near_r, near_c]
    x0, y0, x1, y1 = box
    # map photo pixel centres of the box to raster coordinates (then into the crop: exact in float32) and sample
    # bilinearly
    gx = ((np.arange(x0, x1) + 0.5) * s - 0.5).astype(np.float32) - np.float32(c0)
    gy = ((np.arange(y0, y1) + 0.5) * s - 0.5).astype(np.float32) - np.float32(r0)
    map_x, map_y = np.meshgrid(gx, gy)
    return cv2.remap(small, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), box


def _divide(rgb: np.ndarray, shade_box: tuple, skin_albedo: np.ndarray) -> np.ndarray:
    """The photo with the head's box divided by its shading (linear RGB), highlights softened, as sRGB uint8."""
    shade, (x0, y0, x1, y1) = shade_box
    out = rgb.copy()
    if shade.size == 0:
        return out
    linear = sh.SRGB8_TO_LINEAR[rgb[y0:y1, x0:x1]]
    albedo = linear / np.maximum(shade, sh.MIN_SHADING)
    ceiling = (MAX_OVER_SKIN * skin_albedo).astype(np.float32)
    # soft knee above the ceiling: highlights compress towards it instead of clipping hard
    over = np.maximum(albedo - ceiling, 0)
    albedo = np.minimum(albedo, ceiling) + over * _HIGHLIGHT_SOFTNESS
    out[y0:y1, x0:x1] = sh.linear_to_srgb8(albedo)
    return out


def hair_color(albedo_rgb: np.ndarray, hair: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Median linear RGB (3,) of an albedo photo (sRGB uint8) where ``hair`` (h,w uint8 weight over the whole photo,
    at any size) is over one half, and how many mask pixels that was; None when fewer than 30."""
    if albedo_rgb.shape[:2] != hair.shape:
        albedo_rgb = cv2.resize(albedo_rgb, hair.shape[::-1], interpolation=cv2.INTER_AREA)
    pixels = albedo_rgb[hair > 127]
    if len(pixels) < 30:
        return None
    return np.median(sh.SRGB8_TO_LINEAR[pixels[::max(len(pixels) // 20000, 1)]], axis=0), len(pixels)


def iris_color(rgb: np.ndarray, points_px: np.ndarray, light_camera: np.ndarray) -> np.ndarray | None:
    """Linear RGB albedo (3,) of the irises from MediaPipe's iris landmarks (468–477), or None if unseen.

    Samples the ring between pupil and limbus of both eyes, drops the brightest quarter (catch-lights, lids),
    and divides by the light's shading of a surface facing the camera.
    """
    samples = []
    h, w = rgb.shape[:2]
    for centre, rim in ((468, range(469, 473)), (473, range(474, 478))):
        c = points_px[centre, :2]
        radius = np.linalg.norm(points_px[list(rim), :2] - c, axis=1).mean()
        if radius < 2.0:
            continue
        yy, xx = np.mgrid[int(c[1] - radius):int(c[1] + radius) + 1, int(c[0] - radius):int(c[0] + radius) + 1]
        r = np.hypot(xx + 0.5 - c[0], yy + 0.5 - c[1]) / radius
        ring = (r > 0.45) & (r < 0.85) & (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        samples.append(sh.SRGB8_TO_LINEAR[rgb[yy[ring], xx[ring]]])
    if not samples or sum(len(s) for s in samples) < 8:
        return None
    colors = np.concatenate(samples)
    keep = colors.sum(1) <= np.percentile(colors.sum(1), 75)
    front = sh.shading(light_camera, np.array([[0.0, 0.0, 1.0]]))[0]
    return np.clip(np.median(colors[keep], axis=0) / np.maximum(front, sh.MIN_SHADING), 0.0, 1.0)
