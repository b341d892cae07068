"""Relight a bundle's head without Blender: the albedo under any SH light, seen from a photo's camera.

``likeness relight BUNDLE --light photo|left|right|top|front|FILE.json -o IMAGE`` renders a photo's view with
the head's albedo maps (Lambertian, linear RGB) under the named light, over the photo. ``photo`` is the light
estimated from that photo (manifest ``photos[i].light``), so the render can be compared with the photo itself.
Named lights are a white directional light plus ambient, in the head frame (left = the subject's left, +X).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from . import light as sh
from ..service.bundle import read_bundle
from ..model.camera import Camera
from ..errors import BadInput
from ..model.headmodel import HeadModel, Material
from .occlusion import effective_occlusion, vertex_occlusion
from .preview import surface
from .raster import vertex_normals
from .views import rasterize_head

#: Named lights: direction towards the light in the head frame (+X subject's left, +Y up, +Z out of the face).
NAMED_LIGHTS = {"left": (1.0, 0.2, 0.5), "right": (-1.0, 0.2, 0.5), "top": (0.0, 1.0, 0.4),
                "front": (0.0, 0.1, 1.0)}


def bundle_head(path: str | Path) -> tuple[HeadModel, dict, dict[int, np.ndarray]]:
    """A bundle's fitted head as a :class:`HeadModel` (no identity modes), its manifest and albedo textures."""
    path = Path(path)
    manifest, arrays = read_bundle(path)
    materials = tuple(Material(m["name"], m["kind"], tuple(m["base_color"]), m["roughness"], bool(m["textures"]))
                      for m in manifest["materials"])
    vertices = arrays["vertices"]
    model = HeadModel(
        name=manifest["head_model"]["name"], neutral=vertices,
        identity_basis=np.zeros((0, *vertices.shape), np.float32), expression_basis=arrays["expression_deltas"],
        expression_names=tuple(manifest["expressions"]), faces=arrays["faces"], faces_uv=arrays["faces_uv"],
        uv=arrays["uv"], face_material=arrays["face_material"], materials=materials,
        landmarks_68=arrays["landmarks_68"], face_vertex_count=len(vertices), eyeball_vertices={},
        license_name=manifest["head_model"]["license"], license_text="")
    return model, manifest, bundle_textures(path, manifest)


def bundle_textures(path: str | Path, manifest: dict, channel: str = "base_color") -> dict[int, np.ndarray]:
    """A bundle's textures of one ``channel`` (``base_color``, ``hair_mask``, ...) by material index, as RGB uint8
    (H,W,3) (a grey map in all three); materials without that channel are left out."""
    textures = {}
    for i, m in enumerate(manifest["materials"]):
        rel = m["textures"].get(channel)
        if rel:
            image = cv2.imread(str(Path(path) / rel), cv2.IMREAD_COLOR)
            if image is None:
                raise BadInput(f"The bundle's texture {rel} cannot be read.", "Reconstruct the bundle again.")
            textures[i] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return textures


def named_light(spec: str, photo: dict) -> np.ndarray:
    """The SH light (9,3), head frame, for ``--light``: a name, ``photo`` or a JSON file of 9 RGB rows."""
    if spec == "photo":
        if "light" not in photo:
            raise BadInput("This bundle has no estimated photo light.", "Reconstruct it with this version.")
        return np.asarray(photo["light"]["sh"], np.float64)
    if spec in NAMED_LIGHTS:
        return sh.directional(NAMED_LIGHTS[spec], strength=0.85, ambient=0.25)
    file = Path(spec)
    if not file.is_file():
        from ..edit.lights import light_from_text, understood

        if understood(spec):
            return light_from_text(spec)
    try:
        light = np.asarray(json.loads(file.read_text()), np.float64)
    except (OSError, ValueError) as exc:
        raise BadInput(f"--light {spec} is neither a light name nor a readable JSON file ({exc}).",
                       f"Use one of photo, {', '.join(NAMED_LIGHTS)}, words such as 'warm sunset from the left', "
                       "or a JSON list of 9 [r, g, b] rows.") from exc
    if light.shape != (9, 3) or not np.isfinite(light).all():
        raise BadInput(f"{file.name} holds an array of shape {light.shape}, not 9 rows of [r, g, b].",
                       "Write the 9 SH coefficients per colour channel as a JSON list of 9 [r, g, b] rows.")
    return light


def relight(model: HeadModel, photo: dict, textures: dict[int, np.ndarray], light_head: np.ndarray,
            photo_rgb: np.ndarray | None = None, max_side: int = 1024,
            occlusion: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one photo's view (manifest entry ``photo``) of the head under ``light_head`` (9,3).

    Returns the image (uint8 sRGB) and the head's mask at the photo's size scaled to ``max_side``; the photo
    (or grey) shows around the head. With ``occlusion`` the head's own occlusion darkens its creases
    (:func:`render_lit`); None: where the delighting divided it out (the photo's ``light.occlusion``).
    """
    if occlusion is None:
        occlusion = bool(photo.get("light", {}).get("occlusion", False))
    width, height = photo["image_size"]
    cam = photo["camera"]
    camera = Camera(cam["focal_px"], tuple(cam["principal_point_px"]), (width, height))
    matrix = np.asarray(photo["pose"]["model_to_camera"], np.float64)
    weights = np.array([photo["expression"].get(n, 0.0) for n in model.expression_names])
    verts = model.vertices(expression=weights) @ matrix[:3, :3].T + matrix[:3, 3]
    return render_lit(model, verts, camera, textures, sh.rotate(light_head, matrix[:3, :3]), photo_rgb, max_side,
                      occlusion)


def render_lit(model: HeadModel, vertices_cam: np.ndarray, camera: Camera, textures: dict[int, np.ndarray],
               light_camera: np.ndarray, background: np.ndarray | None = None,
               max_side: int = 1024, occlusion: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The posed head (camera frame, metres) with albedo ``textures`` (sRGB) under an SH light (9,3, camera
    frame), Lambertian; image (uint8 sRGB) and mask at the camera's size scaled to ``max_side``. With
    ``occlusion`` the head's own ambient occlusion darkens its creases as delighting assumes
    (:mod:`likeness.appearance.occlusion`; about 0.4 s more), so the render of a photo's view under that photo's
    light can be compared with the photo."""
    raster = rasterize_head(model, vertices_cam, camera, max_side)
    hit, colors, normals, _ = surface(model, vertices_cam, raster, textures)
    albedo = sh.SRGB8_TO_LINEAR[np.round(colors).astype(np.uint8)]
    shading = np.maximum(sh.shading(light_camera, normals), 0)
    if occlusion:
        ambient = vertex_occlusion(model, vertices_cam, vertex_normals(vertices_cam, model.triangles))
        shading = shading * effective_occlusion(raster.at_pixels(model, ambient[:, None])[:, 0], albedo)
    shaded = albedo * shading
    h, w = raster.triangle.shape
    if background is not None:
        out = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
    else:
        out = np.full((h, w, 3), 64, np.uint8)
    out[hit] = sh.linear_to_srgb8(shaded)
    return out, hit
