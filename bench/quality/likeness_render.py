"""Cycles renders of imported bundles for the likeness bench: neutral expression, even light, frontal and turned.

Each bundle is imported with the add-on's ``api`` (as a user would), its photo cameras removed and its shape
keys cleared (neutral expression). The light is a uniform white world (no key light, so no shading cue of the
photo's light), the backdrop mid grey. The camera looks at the face centre (mean of the 68 landmark vertices)
from ``DISTANCE`` metres, turned about the head's vertical axis by the view's yaw (positive: the camera moves
to the subject's left, so the face turns to the image's right).

With ``geometry`` the head mesh's vertices are replaced before rendering (the mean-head anchor: the ICT mean
head wearing the same textures). Import this module before anything else imports ``bpy``.
"""

from __future__ import annotations

import math
from pathlib import Path

from blender_sandbox import bpy, install_addon  # first: sets up a throw-away Blender user folder
import numpy as np  # noqa: E402
from mathutils import Vector  # noqa: E402

DISTANCE = 0.6  # metres from the face centre
LENS_MM = 85.0  # on a 36 mm sensor: a 0.25 m wide field at DISTANCE
SIZE = 384  # pixels, square
WORLD_GREY = 0.8  # linear RGB of the uniform white-ish world light (also the backdrop seen by the camera)


class BundleRenderer:
    """One Blender scene: a camera and a uniform world; imports one bundle at a time and renders it."""

    def __init__(self, samples: int = 16, hair_volume: float = 0.0) -> None:
        self.api = install_addon()
        from bl_ext.user_default.likeness import convert

        self.convert, self.samples, self.hair_volume = convert, samples, hair_volume

    def _new_scene(self) -> None:
        """An empty file with the camera and the uniform world (each bundle starts from one: nothing is left)."""
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        cam = bpy.data.objects.new("likeness_camera", bpy.data.cameras.new("likeness_camera"))
        scene.collection.objects.link(cam)
        cam.data.sensor_fit, cam.data.sensor_width, cam.data.lens = "HORIZONTAL", 36.0, LENS_MM
        cam.data.clip_start, cam.data.clip_end = 0.05, 10.0
        self.camera = cam
        world = bpy.data.worlds.new("even")
        if world.node_tree is None:
            world.use_nodes = True
        background = world.node_tree.nodes.get("Background") or world.node_tree.nodes.new("ShaderNodeBackground")
        background.inputs["Color"].default_value = (WORLD_GREY, WORLD_GREY, WORLD_GREY, 1.0)
        background.inputs["Strength"].default_value = 1.0
        scene.world, scene.camera = world, cam
        scene.render.engine = "CYCLES"
        c = scene.cycles
        c.device, c.samples, c.use_adaptive_sampling = "CPU", self.samples, True
        # OpenImageDenoise: at 16 samples the refraction through the corneas leaves the irises speckled, which
        # a face-recognition network reads as a feature; denoised, the render looks like a clean photo (+25 % time)
        c.use_denoising, c.denoiser = True, "OPENIMAGEDENOISE"
        c.max_bounces, c.diffuse_bounces, c.glossy_bounces, c.transparent_max_bounces = 4, 2, 1, 16
        scene.view_settings.view_transform, scene.view_settings.look = "Standard", "None"
        r = scene.render
        r.resolution_x = r.resolution_y = SIZE
        r.resolution_percentage, r.film_transparent = 100, False
        r.image_settings.file_format, r.image_settings.color_mode = "PNG", "RGB"

    def load(self, bundle: Path, geometry: np.ndarray | None = None) -> np.ndarray:
        """Import ``bundle`` (replacing the last one), neutral expression; returns the face centre (head frame, m).

        ``geometry``: (V,3) head-frame vertices (m) to put in place of the fitted head's.
        """
        self._new_scene()
        head, *cameras = self.api.import_bundle(bundle, hair_volume=self.hair_volume)
        for cam in cameras:
            bpy.data.objects.remove(cam, do_unlink=True)
        head.shape_key_clear()
        with np.load(Path(bundle) / "head.npz", allow_pickle=False) as npz:
            vertices, landmarks = npz["vertices"], npz["landmarks_68"]
        if geometry is not None:
            if geometry.shape != vertices.shape:
                raise ValueError(f"geometry {geometry.shape} does not match the bundle's vertices {vertices.shape}")
            head.data.vertices.foreach_set("co", self.convert.points_to_blender(geometry).ravel())
            head.data.update()
            vertices = geometry
        self.head = head
        return vertices[landmarks].mean(axis=0)

    def render(self, face_centre: np.ndarray, yaw_deg: float, path: Path) -> None:
        """Render the loaded head, camera aimed at ``face_centre`` (head frame, m) from ``yaw_deg``, to ``path``."""
        yaw = math.radians(yaw_deg)
        offset = DISTANCE * np.array([math.sin(yaw), 0.0, math.cos(yaw)])  # head frame: +Z out of the face
        centre = Vector(self.convert.points_to_blender(np.asarray(face_centre)[None])[0].tolist())
        eye = Vector(self.convert.points_to_blender((np.asarray(face_centre) + offset)[None])[0].tolist())
        self.camera.location = eye
        self.camera.rotation_euler = (centre - eye).to_track_quat("-Z", "Y").to_euler()
        scene = bpy.context.scene
        scene.camera = self.camera  # the import makes the first photo's camera the scene's, and its size
        scene.render.resolution_x = scene.render.resolution_y = SIZE
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
        bpy.context.view_layer.update()
        bpy.context.scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        return np.array(self.camera.matrix_world)



def project(points_head: np.ndarray, face_centre: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Pixel positions (N,2) (x right, y down) of head-frame points (m) in a render from ``yaw_deg`` (a pinhole
    with the camera of :meth:`BundleRenderer.render`; the head sits at Blender's origin, unrotated)."""
    yaw = math.radians(yaw_deg)
    centre = np.asarray(face_centre, np.float64)
    eye = centre + DISTANCE * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    forward = (centre - eye) / DISTANCE
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = np.asarray(points_head, np.float64) - eye
    depth = rel @ forward
    focal = LENS_MM / 36.0 * SIZE
    return np.stack([SIZE / 2 + focal * (rel @ right) / depth, SIZE / 2 - focal * (rel @ up) / depth], axis=1)
