"""Photo-like Cycles renders of synthetic scenes, from bpy with the Likeness add-on.

The skin bundle (a real reconstruction of a dev photo) is imported once with the add-on's ``api``; its skin
textures, eye and teeth materials dress every scene. Per scene the head mesh's vertices are replaced by the
scene's (the shape keys are dropped: the ground truth is exactly ``synth_scenes.posed_vertices``, identity and
expression with the eyeballs turned as the eyeLook* weights say), a camera reproduces the scene's pose and
focal length, a soft key light sits at the scene's azimuth/elevation around the camera direction, and the
world gives a uniform fill light plus a two-colour gradient backdrop (seen only by camera rays).

Import this module before anything else imports ``bpy`` (it goes through ``scripts/blender_sandbox.py``).
"""

from __future__ import annotations

import colorsys
import math
from pathlib import Path

from blender_sandbox import bpy, install_addon  # first: sets up a throw-away Blender user folder
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

from likeness.model.headmodel import HeadModel  # noqa: E402
from synth_scenes import Scene, posed_vertices  # noqa: E402

KEY_DISTANCE = 1.2  # metres from the face centre to the key light
KEY_SIZE = 0.8  # metres, area light side: soft shadows


class Renderer:
    """One Blender scene holding the textured head, a camera, a key light and a world; renders scenes to PNG."""

    def __init__(self, skin_bundle: Path, model: HeadModel, face_centre: np.ndarray, samples: int = 16) -> None:
        """``face_centre``: head-frame point (m) the key light aims at."""
        api = install_addon()
        from bl_ext.user_default.likeness import convert

        self.convert, self.model = convert, model
        bpy.ops.wm.read_homefile(use_empty=True)
        self.head, *photo_cameras = api.import_bundle(skin_bundle)
        for cam in photo_cameras:
            bpy.data.objects.remove(cam)
        self.head.shape_key_clear()
        self.face_centre = Vector(convert.points_to_blender(face_centre).tolist())
        self.camera = self._new_object("camera", bpy.data.cameras.new("camera"))
        self.camera.data.sensor_fit, self.camera.data.sensor_width = "AUTO", convert.SENSOR_WIDTH_MM
        self.camera.data.clip_start, self.camera.data.clip_end = 0.05, 10.0
        key = bpy.data.lights.new("key", "AREA")
        key.size = KEY_SIZE
        self.key = self._new_object("key", key)
        self.world = _world()
        _settings(bpy.context.scene, samples, self.camera, self.world)

    @staticmethod
    def _new_object(name: str, data: bpy.types.ID) -> bpy.types.Object:
        obj = bpy.data.objects.new(name, data)
        bpy.context.scene.collection.objects.link(obj)
        return obj

    def render(self, scene: Scene, path: Path) -> None:
        """Render ``scene`` to the PNG ``path`` (RGB, 8 bit, sRGB)."""
        mesh = self.head.data
        mesh.vertices.foreach_set("co", self.convert.points_to_blender(posed_vertices(self.model, scene)).ravel())
        mesh.update()

        width, height = scene.image_size
        cam = self.camera
        cam.data.lens = self.convert.camera_lens_mm(scene.focal_px, width, height)
        cam.matrix_world = Matrix(self.convert.camera_world_matrix(np.array(scene.model_to_camera)).tolist())
        self._place_key(scene.light)
        _set_world(self.world, scene.light)

        render = bpy.context.scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.filepath = str(path)
        bpy.ops.render.render(write_still=True)

    def _place_key(self, light: dict[str, float]) -> None:
        """Key light at ``azimuth`` (about world up) and ``elevation`` (deg) from the face→camera direction."""
        toward_camera = (self.camera.matrix_world.translation - self.face_centre).normalized()
        turn = Matrix.Rotation(math.radians(light["azimuth"]), 3, "Z")
        side = toward_camera.cross(Vector((0.0, 0.0, 1.0))).normalized()
        tilt = Matrix.Rotation(math.radians(light["elevation"]), 3, turn @ side)
        direction = tilt @ (turn @ toward_camera)
        self.key.location = self.face_centre + KEY_DISTANCE * direction
        self.key.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
        self.key.data.energy = light["energy"]


def _settings(scene: bpy.types.Scene, samples: int, camera: bpy.types.Object, world: bpy.types.World) -> None:
    """Cycles on the CPU, few samples (the grain left is like a photo's; the denoiser would triple the time on
    two cores), short light paths, plain sRGB output."""
    scene.camera, scene.world = camera, world
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_adaptive_sampling = True
    cycles.use_denoising = False
    cycles.max_bounces, cycles.diffuse_bounces, cycles.glossy_bounces = 4, 2, 1
    cycles.transmission_bounces, cycles.volume_bounces, cycles.transparent_max_bounces = 0, 0, 16
    cycles.caustics_reflective = cycles.caustics_refractive = False
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"


def _world() -> bpy.types.World:
    """World shader: camera rays see a vertical two-colour gradient; other rays a uniform grey fill."""
    world = bpy.data.worlds.new("synthetic")
    if world.node_tree is None:  # Blender < 5.0 creates worlds without nodes
        world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    coords = nodes.new("ShaderNodeTexCoord")
    split = nodes.new("ShaderNodeSeparateXYZ")
    gradient = nodes.new("ShaderNodeValToRGB")
    gradient.name = "gradient"
    backdrop = nodes.new("ShaderNodeBackground")
    fill = nodes.new("ShaderNodeBackground")
    fill.name = "fill"
    path = nodes.new("ShaderNodeLightPath")
    mix = nodes.new("ShaderNodeMixShader")
    out = nodes.new("ShaderNodeOutputWorld")
    links.new(coords.outputs["Window"], split.inputs["Vector"])
    links.new(split.outputs["Y"], gradient.inputs["Fac"])
    links.new(gradient.outputs["Color"], backdrop.inputs["Color"])
    links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    links.new(fill.outputs["Background"], mix.inputs[1])
    links.new(backdrop.outputs["Background"], mix.inputs[2])
    links.new(mix.outputs["Shader"], out.inputs["Surface"])
    return world


def _set_world(world: bpy.types.World, light: dict[str, float]) -> None:
    """Fill strength ``light["world"]``; backdrop from a dark (bottom) to a light (top) tint of the hue."""
    nodes = world.node_tree.nodes
    nodes["fill"].inputs["Strength"].default_value = light["world"]
    hue = light["backdrop_hue"]
    bottom = colorsys.hsv_to_rgb(hue, 0.25, 0.12)
    top = colorsys.hsv_to_rgb(hue, 0.15, 0.6)
    stops = nodes["gradient"].color_ramp.elements
    stops[0].color, stops[1].color = (*bottom, 1.0), (*top, 1.0)
