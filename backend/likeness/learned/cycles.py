"""Training renders shaded by Cycles (bpy), for the renderer gap: the same scenes, skins, backdrops and camera
finish as :mod:`likeness.learned.render`, with the head lit by a path tracer instead of the rasteriser's shading.

Cycles gives what the rasteriser only imitates: light bouncing in the eye sockets, nostrils and the lips' seam,
soft shadows of the key light, specular highlights of a microfacet skin. The head is drawn alone (transparent
film) and laid over the rasteriser's backdrop in linear light; the occluder, exposure, blur, noise and JPEG are
:mod:`likeness.learned.render`'s own. Needs bpy (``pip install bpy``, Python 3.11); about 2 s a render on 2 cores.

World frame = the camera frame (OpenGL: x right, y up, the camera looking down −z from the origin), metres.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..model.camera import Camera
from ..model.headmodel import HeadModel
from .render import Lighting, backdrop, drawn_triangles, finish, occlude, plain_backdrop
from .skins import Skin

SENSOR_WIDTH_MM = 36.0
SAMPLES = 16
RENDER_DEVICES = ("cpu", "auto", "optix", "cuda")  # auto: OptiX, else CUDA, else the CPU
BORDER_PX = 3  # margin (px) around the head's projected box that Cycles traces: the pixel filter reaches 1.5 px


class CyclesHeadRenderer:
    """One Blender scene with the head mesh (per-vertex albedo and gloss), a camera at the origin, a sun for the
    key light and a uniform world for the fill. Not thread-safe; one per process (bpy is process-global).
    ``device``: one of :data:`RENDER_DEVICES`; :attr:`device` says which renders (``CPU``, ``OPTIX``, ``CUDA``). A
    GPU traces the same scene with other random sequences: its pictures differ from the CPU's in their noise only."""

    def __init__(self, model: HeadModel, samples: int = SAMPLES, device: str = "cpu") -> None:
        import bpy

        self.bpy, self.model = bpy, model
        bpy.ops.wm.read_factory_settings(use_empty=True)
        mesh = bpy.data.meshes.new("head")
        mesh.from_pydata(model.neutral.astype(np.float64).tolist(), [], drawn_triangles(model).tolist())
        mesh.shade_smooth()
        mesh.color_attributes.new("albedo", "FLOAT_COLOR", "POINT")
        mesh.attributes.new("gloss", "FLOAT", "POINT")
        mesh.materials.append(_skin_material(bpy))
        self.mesh = mesh
        scene = bpy.context.scene
        scene.collection.objects.link(bpy.data.objects.new("head", mesh))
        camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        camera.data.sensor_fit, camera.data.sensor_width = "AUTO", SENSOR_WIDTH_MM
        camera.data.clip_start, camera.data.clip_end = 0.02, 20.0
        scene.collection.objects.link(camera)
        sun = bpy.data.lights.new("key", "SUN")
        self.sun = bpy.data.objects.new("key", sun)
        scene.collection.objects.link(self.sun)
        world = bpy.data.worlds.new("fill")
        if world.node_tree is None:
            world.use_nodes = True
        self.world = world
        scene.camera, scene.world = camera, world
        scene.render.engine = "CYCLES"
        cycles = scene.cycles
        self.device = _use_device(bpy, scene, device)
        cycles.samples, cycles.use_adaptive_sampling, cycles.use_denoising = samples, True, False
        cycles.max_bounces, cycles.diffuse_bounces, cycles.glossy_bounces = 4, 2, 1
        cycles.transmission_bounces, cycles.volume_bounces = 0, 0
        cycles.caustics_reflective = cycles.caustics_refractive = False
        scene.render.film_transparent = True
        scene.view_settings.view_transform = "Standard"
        settings = scene.render.image_settings
        settings.file_format, settings.color_mode, settings.color_depth = "OPEN_EXR", "RGBA", "16"
        self.camera, self.scene = camera, scene

    def render(self, verts: np.ndarray, skin: Skin, rotation: np.ndarray, translation: np.ndarray,
               camera: Camera, light: Lighting, rng: np.random.Generator, occluder: bool = False,
               plain: bool = False) -> np.ndarray:
        """RGB uint8 (H,W,3) of the head ``verts`` (V,3, head frame, m) at pose (rotation, translation), as
        :meth:`likeness.learned.render.HeadRenderer.render` takes them; the same draws from ``rng`` in the same order
        (backdrop, occluder, finish)."""
        width, height = camera.size
        image = plain_backdrop(width, height, rng) if plain else backdrop(width, height, rng)
        head = self._shade(verts @ rotation.T + translation, skin, camera, light)
        image = head[..., :3] + (1.0 - head[..., 3:]) * image  # Cycles' film is premultiplied
        if occluder:
            face, _ = camera.project(verts[self.model.landmarks_68] @ rotation.T + translation)
            image = occlude(image, (*face.min(0), *face.max(0)), rng)
        return finish(image, rng)

    def _shade(self, posed: np.ndarray, skin: Skin, camera: Camera, light: Lighting) -> np.ndarray:
        """Linear premultiplied RGBA (H,W,4) of the posed head (V,3, camera frame, m) alone."""
        bpy = self.bpy
        self.mesh.vertices.foreach_set("co", posed.astype(np.float32).ravel())
        rgba = np.concatenate([skin.albedo, np.ones((len(skin.albedo), 1))], 1)
        # looked up each time: a mesh's attribute handles do not outlive its updates
        self.mesh.attributes["albedo"].data.foreach_set("color", rgba.astype(np.float32).ravel())
        self.mesh.attributes["gloss"].data.foreach_set("value", skin.gloss.astype(np.float32))
        self.mesh.update()
        width, height = camera.size
        self.camera.data.lens = camera.focal_px * SENSOR_WIDTH_MM / max(width, height)
        self.camera.data.shift_x = (width / 2.0 - camera.principal_point[0]) / max(width, height)
        self.camera.data.shift_y = (camera.principal_point[1] - height / 2.0) / max(width, height)
        strength = float(max(light.key.max(), 1e-6))
        from mathutils import Vector

        self.sun.data.energy = math.pi * strength  # irradiance: a white Lambert surface facing it reads `key`
        self.sun.data.color = (light.key / strength).tolist()
        self.sun.data.angle = math.radians(2.0 + 40.0 * light.wrap)  # a softer key, a wider sun
        self.sun.rotation_euler = Vector(light.key_direction.tolist()).to_track_quat("Z", "Y").to_euler()
        self.sun.data.specular_factor = float(np.clip(2.0 * light.specular, 0.0, 1.0))
        self.world.node_tree.nodes["Background"].inputs["Color"].default_value = (*light.fill.tolist(), 1.0)
        render = self.scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        # only the head's pixels are traced (the rest of the film is transparent either way): its projected
        # vertices' box, widened by the pixel filter's reach; the picture stays full size and alike to the bit
        px, _ = camera.project(posed)
        low = np.clip(np.floor(px.min(0)) - BORDER_PX, 0, (width, height)) / (width, height)
        high = np.clip(np.ceil(px.max(0)) + BORDER_PX, 0, (width, height)) / (width, height)
        render.use_border, render.use_crop_to_border = bool(np.all(high > low)), False
        render.border_min_x, render.border_max_x = low[0], high[0]
        render.border_min_y, render.border_max_y = 1.0 - high[1], 1.0 - low[1]  # Blender's rows run up
        with tempfile.TemporaryDirectory(prefix="likeness-cycles-") as folder:  # gone with the picture
            render.filepath = str(Path(folder) / "head.exr")
            bpy.ops.render.render(write_still=True)
            picture = bpy.data.images.load(render.filepath)
            try:
                pixels = np.empty(width * height * 4, np.float32)
                picture.pixels.foreach_get(pixels)
            finally:
                bpy.data.images.remove(picture)
        return pixels.reshape(height, width, 4)[::-1].astype(np.float64)  # Blender's rows run up


def _use_device(bpy, scene, device: str) -> str:
    """Point ``scene``'s Cycles at ``device`` (:data:`RENDER_DEVICES`); returns the one it renders on: ``CPU``,
    ``OPTIX`` or ``CUDA``. A GPU asked for by name and not found is :class:`BadInput`; ``auto`` falls back to the
    CPU."""
    if device not in RENDER_DEVICES:
        raise BadInput(f"Unknown render device {device!r}.", f"Use one of {', '.join(RENDER_DEVICES)}.")
    if device != "cpu":
        prefs = bpy.context.preferences.addons["cycles"].preferences
        for kind in ("OPTIX", "CUDA") if device == "auto" else (device.upper(),):
            if any(d.type == kind for d in prefs.get_devices_for_type(kind)):
                prefs.compute_device_type = kind
                for entry in prefs.devices:
                    entry.use = entry.type == kind
                scene.cycles.device = "GPU"
                return kind
        if device != "auto":
            raise BadInput(f"Cycles finds no {device.upper()} device on this machine.",
                           "Render on the CPU (--render-device cpu) or let it choose (auto).")
    scene.cycles.device = "CPU"
    return "CPU"


def _skin_material(bpy):
    """Principled BSDF: base colour from the ``albedo`` attribute, roughness 0.65 − 0.35 × ``gloss``, a little
    subsurface scattering."""
    material = bpy.data.materials.new("skin")
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    colour = nodes.new("ShaderNodeAttribute")
    colour.attribute_name = "albedo"
    gloss = nodes.new("ShaderNodeAttribute")
    gloss.attribute_name = "gloss"
    rough = nodes.new("ShaderNodeMapRange")
    rough.inputs["To Min"].default_value, rough.inputs["To Max"].default_value = 0.65, 0.3
    links.new(colour.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(gloss.outputs["Fac"], rough.inputs["Value"])
    links.new(rough.outputs["Result"], bsdf.inputs["Roughness"])
    bsdf.inputs["Specular IOR Level"].default_value = 0.4
    # the add-on's skin (blender_addon/build.py SKIN_SUBSURFACE): light that spreads a few millimetres under the skin
    bsdf.inputs["Subsurface Weight"].default_value = 0.15
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
    bsdf.inputs["Subsurface Scale"].default_value = 0.004
    return material
