"""Importing small synthetic bundles: geometry, axes, shape keys, materials, cameras, rollback, operator errors."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from .bundle_factory import EXPRESSIONS, FOCAL_PX, PHOTO_SIZE, PRINCIPAL_POINT, box_arrays, write_bundle

DATA_KINDS = ("objects", "meshes", "materials", "images", "cameras", "collections", "shape_keys", "actions")


def data_counts() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind)) for kind in DATA_KINDS}


def evaluated_vertices(obj: bpy.types.Object) -> np.ndarray:
    """World-space vertex positions with shape keys applied, (V, 3)."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3)


def bundle_projection(points_head: np.ndarray, model_to_camera: np.ndarray) -> np.ndarray:
    """docs/bundle.md: pixel coordinates of head-frame points, origin top-left, y down."""
    q = points_head @ model_to_camera[:3, :3].T + model_to_camera[:3, 3]
    cx, cy = PRINCIPAL_POINT
    return np.stack([cx + FOCAL_PX * q[:, 0] / -q[:, 2], cy - FOCAL_PX * q[:, 1] / -q[:, 2]], axis=1)


def test_box_bundle_builds_head_with_blender_axes(addon, scene, tmp_path):
    root = write_bundle(tmp_path / "box")
    head, camera = addon.api.import_bundle(root)
    arrays = box_arrays()

    assert head.users_collection[0].name == "boxhead"
    assert head.users_collection[0].name in scene.collection.children
    assert bpy.context.view_layer.objects.active == head and head.select_get()
    mesh = head.data
    assert (len(mesh.vertices), len(mesh.polygons), len(mesh.loops)) == (8, 7, 26)
    totals = np.empty(7, dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    np.testing.assert_array_equal(totals, [4, 4, 4, 4, 4, 3, 3])
    co = np.empty(24, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    v = arrays["vertices"]
    np.testing.assert_allclose(co.reshape(-1, 3), np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1))
    # the face (+Z in the head frame) looks toward -Y in Blender: the front polygon's normal
    np.testing.assert_allclose(mesh.polygons[0].normal, (0, -1, 0), atol=1e-6)

    uv = np.empty(26 * 2, dtype=np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
    np.testing.assert_allclose(uv.reshape(-1, 2), arrays["uv"][arrays["faces_uv"][arrays["faces_uv"] != -1]])
    material_index = np.empty(7, dtype=np.int32)
    mesh.polygons.foreach_get("material_index", material_index)
    np.testing.assert_array_equal(material_index, arrays["face_material"])

    assert head["likeness_bundle"] == str(root.resolve()) and camera["likeness_bundle"] == str(root.resolve())
    assert list(head["likeness_identity"]) == [0.5, -0.25]
    assert head["likeness_expression"].to_dict() == {"jawOpen": 0.25, "eyeBlink_L": 0.75}


def test_shape_keys_hold_expressions_and_the_photo_weights(addon, scene, tmp_path):
    head, _ = addon.api.import_bundle(write_bundle(tmp_path / "box"))
    blocks = head.data.shape_keys.key_blocks
    assert [b.name for b in blocks] == ["Basis", *EXPRESSIONS]
    assert [(b.slider_min, b.slider_max) for b in blocks[1:]] == [(0.0, 1.0)] * 2
    assert [b.value for b in blocks[1:]] == pytest.approx([0.25, 0.75])
    arrays = box_arrays()
    posed = arrays["vertices"] + 0.25 * arrays["expression_deltas"][0] + 0.75 * arrays["expression_deltas"][1]
    np.testing.assert_allclose(evaluated_vertices(head), np.stack([posed[:, 0], -posed[:, 2], posed[:, 1]], 1),
                               atol=1e-6)


def test_camera_reproduces_the_photo_projection(addon, scene, tmp_path):
    root = write_bundle(tmp_path / "box", edit_manifest=_turn_head)
    head, camera = addon.api.import_bundle(root)
    assert scene.camera == camera
    assert (scene.render.resolution_x, scene.render.resolution_y) == PHOTO_SIZE
    assert camera.data.sensor_fit == "AUTO"
    assert camera.data.show_background_images
    background = camera.data.background_images[0].image
    assert background.filepath == str(root.resolve() / "photos" / "photo_00.jpg")

    record = json.loads((root / "manifest.json").read_text())["photos"][0]
    model_to_camera = np.array(record["pose"]["model_to_camera"])
    arrays = box_arrays()
    weights = np.array([record["expression"][n] for n in EXPRESSIONS], dtype=np.float32)
    posed = arrays["vertices"] + np.tensordot(weights, arrays["expression_deltas"], axes=1)
    expected = bundle_projection(posed, model_to_camera)
    width, height = PHOTO_SIZE
    seen = np.array([world_to_camera_view(scene, camera, Vector(p))[:2] for p in evaluated_vertices(head)])
    actual = np.stack([seen[:, 0] * width, (1.0 - seen[:, 1]) * height], axis=1)
    np.testing.assert_allclose(actual, expected, atol=1e-3)


def _turn_head(manifest: dict) -> None:
    """Photo 0: the head turned 20 deg and tilted, off centre, so that axis or sign errors show."""
    yaw, pitch = np.radians(20.0), np.radians(-10.0)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    pose = np.eye(4)
    pose[:3, :3] = rx @ ry
    pose[:3, 3] = [0.03, -0.02, -0.6]
    manifest["photos"][0]["pose"]["model_to_camera"] = pose.tolist()


def test_several_photos_become_keyframes_and_cameras(addon, scene, tmp_path):
    head, *cameras = addon.api.import_bundle(write_bundle(tmp_path / "box", photos=3))
    assert [c.name for c in cameras] == ["boxhead photo 1", "boxhead photo 2", "boxhead photo 3"]
    assert all(c.type == "CAMERA" for c in cameras)
    assert (scene.frame_start, scene.frame_end) == (1, 3)
    jaw = head.data.shape_keys.key_blocks["jawOpen"]
    values = []
    for frame in (1, 2, 3):
        scene.frame_set(frame)
        values.append(jaw.value)
    assert values == pytest.approx([0.25, 0.5, 0.75])  # 0.25 + 0.25 k, written by the factory
    assert [m.camera for m in scene.timeline_markers] == cameras


def test_markers_switching_cameras_also_switch_the_render_resolution(addon, scene, tmp_path):
    portrait = [PHOTO_SIZE[1], PHOTO_SIZE[0]]
    root = write_bundle(tmp_path / "box", photos=3,
                        edit_manifest=lambda m: m["photos"][1].update(image_size=portrait))
    head, *cameras = addon.api.import_bundle(root)
    assert [list(c["likeness_resolution"]) for c in cameras] == [list(PHOTO_SIZE), portrait, list(PHOTO_SIZE)]
    assert (scene.render.resolution_x, scene.render.resolution_y) == PHOTO_SIZE  # photo 1 frames right at once
    handler = addon.build.sync_resolution
    assert handler in bpy.app.handlers.frame_change_pre
    for frame, size in ((2, portrait), (3, list(PHOTO_SIZE)), (2, portrait), (1, list(PHOTO_SIZE))):
        scene.frame_set(frame)  # the marker makes this photo's camera active; Blender runs the handler
        assert scene.camera == cameras[frame - 1]
        assert [scene.render.resolution_x, scene.render.resolution_y] == size, f"frame {frame}"
        scene.render.resolution_x = scene.render.resolution_y = 100
        handler(scene, None)  # called by hand: the camera of this frame's marker sets the resolution
        assert [scene.render.resolution_x, scene.render.resolution_y] == size, f"frame {frame}"


def test_resolution_handler_leaves_other_cameras_alone(addon, scene):
    camera = bpy.data.objects.new("plain camera", bpy.data.cameras.new("plain camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = 1234, 567
    addon.build.sync_resolution(scene, None)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1234, 567)


def test_resolution_handler_is_removed_with_the_addon(addon):
    handler = addon.build.sync_resolution
    addon.unregister()
    try:
        assert handler not in bpy.app.handlers.frame_change_pre
    finally:
        addon.register()
    assert list(bpy.app.handlers.frame_change_pre).count(handler) == 1


def test_materials_have_texture_and_transparent_overlay(addon, scene, tmp_path):
    root = write_bundle(tmp_path / "box")
    head, _ = addon.api.import_bundle(root)
    skin, overlay = head.data.materials
    assert (skin.name, overlay.name) == ("skin_face", "eye_overlay")
    texture_nodes = [n for n in skin.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    assert len(texture_nodes) == 1
    image = texture_nodes[0].image
    assert image.filepath == str(root.resolve() / "textures" / "skin_face.png")
    assert image.colorspace_settings.name == "sRGB"
    bsdf = next(n for n in skin.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Base Color"].links[0].from_node == texture_nodes[0]
    overlay_bsdf = next(n for n in overlay.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert overlay_bsdf.inputs["Alpha"].default_value == 0.0
    assert not overlay_bsdf.inputs["Base Color"].links
    assert overlay.surface_render_method == "BLENDED"


def test_failure_while_building_leaves_nothing(addon, scene, tmp_path, monkeypatch):
    root = write_bundle(tmp_path / "box", photos=2)
    before = data_counts()

    def broken_camera(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(addon.build, "_camera", broken_camera)
    with pytest.raises(addon.errors.BundleError, match="simulated failure") as info:
        addon.api.import_bundle(root)
    assert "Nothing was imported" in info.value.hint
    assert data_counts() == before
    assert len(scene.collection.children) == 0


def test_import_operator_reports_invalid_bundle(addon, scene, tmp_path):
    root = write_bundle(tmp_path / "box", edit_manifest=lambda m: m.update(version=7))
    before = data_counts()
    with pytest.raises(RuntimeError, match=r"version 7; this add-on reads version 1"):
        bpy.ops.likeness.import_bundle(filepath=str(root))  # in background mode an ERROR report raises
    assert data_counts() == before


def test_import_operator_twice_gives_two_collections(addon, scene, tmp_path):
    root = write_bundle(tmp_path / "box")
    assert "UNDO" in bpy.types.LIKENESS_OT_import_bundle.bl_options
    assert bpy.ops.likeness.import_bundle(filepath=str(root)) == {"FINISHED"}
    assert bpy.ops.likeness.import_bundle(filepath=str(root / "manifest.json")) == {"FINISHED"}
    collections = sorted(c.name for c in scene.collection.children)
    assert collections == ["boxhead", "boxhead.001"]
    heads = [o for o in bpy.data.objects if o.type == "MESH"]
    assert len(heads) == 2 and heads[0].data != heads[1].data


def _write_text(rel: str, text: str):
    return lambda root: (root / rel).write_text(text)


@pytest.mark.parametrize("damage, message", [
    (_write_text("manifest.json", '{"format": "likeness.bundle", "version": 1, "mesh": {'), "not valid JSON"),
    (lambda root: (root / "photos" / "photo_01.jpg").unlink(), "photo 2 'photos/photo_01.jpg' is missing"),
    (lambda root: (root / "head.npz").write_bytes((root / "head.npz").read_bytes()[:300]), "cannot be read"),
    (lambda root: (root / "textures" / "skin_face.png").unlink() or (root / "textures" / "skin_face.png")
     .symlink_to(root.parent / "elsewhere.png"), "points outside the bundle folder"),
    (_write_text("textures/skin_face.png", "not a png"), "is not a PNG or JPEG image"),
])
def test_malformed_bundle_imports_nothing(addon, scene, tmp_path, damage, message):
    """A bundle damaged after it was written is refused whole: no object, mesh, image or collection is left."""
    (tmp_path / "elsewhere.png").write_bytes(b"outside")
    root = write_bundle(tmp_path / "box", photos=2)
    damage(root)
    before = data_counts()
    with pytest.raises(addon.errors.BundleError, match=message) as info:
        addon.api.import_bundle(root)
    assert info.value.hint
    assert data_counts() == before and len(scene.collection.children) == 0
