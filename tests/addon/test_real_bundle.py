"""Importing a bundle made by the real backend CLI: mesh, shape keys, materials, cameras, glTF, Cycles render."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from .render import render_cycles

ICT_VERTEX_COUNT = 26719
ICT_EXPRESSION_COUNT = 53


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture
def imported(addon, scene, real_bundle):
    """The real bundle imported into a fresh scene (its speed is measured in bench/bench_import.py)."""
    return addon.api.import_bundle(real_bundle)


def test_real_bundle_import(imported, real_bundle, scene):
    head, *cameras = imported
    manifest = manifest_of(real_bundle)
    assert head.type == "MESH" and head.name == f"{manifest['job']['name']} head"
    assert head.users_collection[0].name == manifest["job"]["name"]
    assert len(head.data.vertices) == ICT_VERTEX_COUNT == manifest["mesh"]["vertex_count"]
    assert len(head.data.polygons) == manifest["mesh"]["face_count"]

    blocks = head.data.shape_keys.key_blocks
    assert len(blocks) == ICT_EXPRESSION_COUNT + 1 and blocks[0].name == "Basis"
    assert [b.name for b in blocks[1:]] == manifest["expressions"]
    weights = manifest["photos"][0]["expression"]
    assert {b.name: b.value for b in blocks[1:]} == pytest.approx(weights, abs=1e-6)
    assert any(w > 0.01 for w in weights.values())  # the fit found some expression

    uv = np.empty(len(head.data.loops) * 2, dtype=np.float32)
    head.data.uv_layers.active.data.foreach_get("uv", uv)
    assert 0.0 <= uv.min() and uv.max() <= 1.0 and uv.std() > 0.1

    textured = [m for m in head.data.materials
                if any(n.bl_idname == "ShaderNodeTexImage" and n.image for n in m.node_tree.nodes)]
    expected = [m["name"] for m in manifest["materials"] if m["textures"].get("base_color")]
    assert sorted(m.name.split(".")[0] for m in textured) == sorted(expected) and expected
    image = next(n.image for n in textured[0].node_tree.nodes if n.bl_idname == "ShaderNodeTexImage")
    assert tuple(image.size) == (256, 256)

    assert len(cameras) == len(manifest["photos"]) == 1
    assert cameras[0].data.background_images[0].image.size[:] == tuple(manifest["photos"][0]["image_size"])


def test_camera_sees_landmarks_where_the_backend_put_them(imported, real_bundle, scene, addon):
    """The photo camera projects the posed landmark vertices onto the manifest's landmarks_68_px."""
    head, camera = imported
    photo = manifest_of(real_bundle)["photos"][0]
    with np.load(real_bundle / "head.npz", allow_pickle=False) as arrays:
        landmarks = arrays["landmarks_68"]
    evaluated = head.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    points = [head.matrix_world @ mesh.vertices[int(i)].co for i in landmarks]
    evaluated.to_mesh_clear()
    width, height = photo["image_size"]
    seen = np.array([world_to_camera_view(scene, camera, Vector(p))[:2] for p in points])
    pixels = np.stack([seen[:, 0] * width, (1 - seen[:, 1]) * height], axis=1)
    expected = np.array(photo["landmarks_68_px"])
    assert np.abs(pixels - expected).max() < 0.5


def test_gltf_export_keeps_53_morph_targets(imported, real_bundle, tmp_path):
    head, *cameras = imported
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == head)
    target = tmp_path / "head.glb"
    result = bpy.ops.export_scene.gltf(filepath=str(target), export_format="GLB", use_selection=True,
                                       export_morph=True, export_apply=False, export_cameras=False)
    assert result == {"FINISHED"}
    data = target.read_bytes()
    assert data[:4] == b"glTF"
    json_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    assert chunk_type == b"JSON"
    gltf = json.loads(data[20:20 + json_length])
    (mesh,) = gltf["meshes"]
    assert mesh["extras"]["targetNames"] == manifest_of(real_bundle)["expressions"]
    assert all(len(p["targets"]) == ICT_EXPRESSION_COUNT for p in mesh["primitives"])
    assert mesh["weights"] == pytest.approx([head.data.shape_keys.key_blocks[n].value
                                             for n in mesh["extras"]["targetNames"]], abs=1e-6)


def test_cycles_render_from_the_photo_camera_shows_skin(imported, scene, tmp_path):
    head, camera = imported
    world = bpy.data.worlds.new("grey light")
    world.color = (0.8, 0.8, 0.8)  # Cycles uses this when the world has no node tree
    scene.world = world
    if world.node_tree is not None:
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.8, 0.8, 0.8, 1.0)
    pixels = render_cycles(scene, camera, tmp_path / "render.png")
    h, w = pixels.shape[:2]
    middle = pixels[h // 3: 2 * h // 3, w // 3: 2 * w // 3]
    covered = middle[..., 3] > 0.99
    assert covered.mean() > 0.9, "the head does not fill the middle of the photo's view"
    assert (pixels[..., 3] < 0.01).mean() > 0.05, "no background left around the head"
    r, g, b = (middle[..., c][covered].mean() for c in range(3))
    assert r > 0.15 and r > g > b * 0.9 and r > b * 1.1, f"middle colour {r:.2f} {g:.2f} {b:.2f} is not skin-like"
