"""The imported head is lit by the scene (albedo, not baked light): Cycles renders under different lights."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest

from likeness.appearance.light import directional

from .render import render_cycles


@pytest.fixture
def head_and_camera(addon, scene, real_bundle):
    head, camera = addon.api.import_bundle(real_bundle)
    scene.world = None  # only the lights the test adds
    return head, camera


def _halves(pixels: np.ndarray) -> tuple[float, float]:
    """Mean brightness of the head's left and right halves in the image (split at the head's centre column)."""
    covered = pixels[..., 3] > 0.99
    cols = np.nonzero(covered)[1]
    centre = int(np.median(cols))
    brightness = pixels[..., :3].mean(2)
    left = brightness[:, :centre][covered[:, :centre]].mean()
    right = brightness[:, centre:][covered[:, centre:]].mean()
    return float(left), float(right)


def _sun(scene: bpy.types.Scene, from_subject_left: bool) -> bpy.types.Object:
    """A sun lamp shining across the face from the subject's left (+X) or right (−X)."""
    lamp = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    lamp.data.energy = 4.0
    lamp.rotation_euler = (0.0, math.pi / 2 if from_subject_left else -math.pi / 2, 0.0)  # −Z → ∓X
    scene.collection.objects.link(lamp)
    return lamp


def test_head_relights_with_the_light_direction(head_and_camera, scene, tmp_path):
    head, camera = head_and_camera
    lamp = _sun(scene, from_subject_left=True)
    left_lit = _halves(render_cycles(scene, camera, tmp_path / "left.png", samples=4))
    bpy.data.objects.remove(lamp)
    _sun(scene, from_subject_left=False)
    right_lit = _halves(render_cycles(scene, camera, tmp_path / "right.png", samples=4))
    # the subject's left is the image's right from the (frontal) photo camera
    assert left_lit[1] > 1.5 * left_lit[0], f"light from the subject's left: halves {left_lit}"
    assert right_lit[0] > 1.5 * right_lit[1], f"light from the subject's right: halves {right_lit}"


def test_skin_material_has_albedo_normal_roughness_and_subsurface(head_and_camera):
    head, _ = head_and_camera
    skin = next(m for m in head.data.materials if m.name.startswith("skin_face"))
    nodes = skin.node_tree.nodes
    images = {n.image.name: n for n in nodes if n.bl_idname == "ShaderNodeTexImage"}
    spaces = {name.split(".")[0].rsplit("_", 1)[-1]: node.image.colorspace_settings.name
              for name, node in images.items()}
    expected = {"albedo": "sRGB", "normal": "Non-Color", "roughness": "Non-Color"}
    if "likeness_hair_color" in head:  # a bundle with hair: the hair cap's mask and colour (test_hair_cap.py)
        expected.update(mask="Non-Color", color="sRGB")
    assert spaces == expected
    normal_map = next(n for n in nodes if n.bl_idname == "ShaderNodeNormalMap")
    assert normal_map.space == "TANGENT" and normal_map.uv_map in head.data.uv_layers
    bsdf = next(n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Normal"].is_linked and bsdf.inputs["Roughness"].is_linked
    assert bsdf.inputs["Subsurface Weight"].default_value > 0
    assert bsdf.inputs["Emission Strength"].default_value == 0 or not any(
        bsdf.inputs["Emission Color"].default_value[:3])


def test_match_photo_lighting_lights_from_the_estimated_side(head_and_camera, scene, tmp_path, addon):
    head, camera = head_and_camera
    assert len(camera["likeness_light"]) == 27
    sh = directional([1.0, 0.0, 0.3], strength=0.8, ambient=0.05)  # from the subject's left (+X, head frame)
    camera["likeness_light"] = sh.ravel().tolist()
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = camera
    assert bpy.ops.likeness.match_photo_lighting() == {"FINISHED"}
    assert scene.world.name.startswith(camera.name) and scene.view_settings.view_transform == "Standard"
    left, right = _halves(render_cycles(scene, camera, tmp_path / "matched.png", samples=8))
    assert right > 1.5 * left, f"world from SH light on the subject's left: halves {(left, right)}"


def test_world_radiance_is_non_negative_and_reprojects_onto_the_light(addon):
    """The world's clamped radiance has the light's band 0–2 coefficients: band factor × them = the shading."""
    from likeness.appearance import light as sh

    d = sh.sphere_directions(4000)
    head = np.stack([d[:, 0], d[:, 2], -d[:, 1]], 1)  # Blender direction (x, y, z) = head direction (x, z, −y)
    for light in (directional([0.3, 0.5, 0.8], strength=1.0, ambient=0.3),
                  directional([1.0, 0.0, 0.2], strength=1.0, ambient=0.05)):  # strong: negative lobes
        radiance = addon.sh_light.radiance(light, d)
        assert radiance.min() >= 0
        back = addon.sh_light.project(radiance, sh.sh_basis(head)) * sh.BAND_FACTOR[:, None]
        np.testing.assert_allclose(back, light, atol=0.02 * light[0, 0])
