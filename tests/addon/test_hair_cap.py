"""The hair cap: a bundle with hair (a hair mask texture and ``hair.color``) mixes the hair colour over the skin;
the hair volume lifts the surface there (a Displace modifier weighted by the hair masks)."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from PIL import Image

from .bundle_factory import write_bundle

HAIR = [0.05, 0.03, 0.02]


def with_hair(manifest: dict, root) -> None:
    Image.new("L", (4, 4), 255).save(root / "textures" / "skin_face_hair_mask.png")
    manifest["materials"][0]["textures"]["hair_mask"] = "textures/skin_face_hair_mask.png"
    manifest["hair"] = {"color": HAIR, "materials": ["skin_face"]}


def with_hair_texture(manifest: dict, root) -> None:
    with_hair(manifest, root)
    Image.new("RGB", (4, 4), (90, 60, 30)).save(root / "textures" / "skin_face_hair_color.png")
    manifest["materials"][0]["textures"]["hair_color"] = "textures/skin_face_hair_color.png"


def skin_material(addon):
    head = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    return head, next(m for m in head.data.materials if m.name.startswith("skin_face"))


@pytest.mark.parametrize("cap", [True, False])
def test_bundle_with_hair_gets_a_hair_cap(addon, scene, tmp_path, cap):
    root = tmp_path / "hairy"
    write_bundle(root, edit_manifest=lambda m: with_hair(m, root))
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    build.import_bundle(root, scene, hair_cap=cap)
    head, mat = skin_material(addon)
    nodes = mat.node_tree.nodes
    mix, mask, value = nodes[build.HAIR_MIX_NODE], nodes[build.HAIR_MASK_NODE], nodes[build.HAIR_CAP_NODE]
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    # Base Color comes from the mix; the mix takes the albedo (A), the hair colour (B), mask × cap (factor)
    (link,) = bsdf.inputs["Base Color"].links
    assert link.from_node == mix
    inputs = {s.identifier: s for s in mix.inputs}
    assert inputs["A_Color"].links[0].from_node.image.filepath.endswith("skin_face.png")
    assert list(inputs["B_Color"].default_value)[:3] == pytest.approx(HAIR) and not inputs["B_Color"].links
    factor = inputs["Factor_Float"].links[0].from_node
    assert factor.operation == "MULTIPLY"
    assert {link.from_node for s in factor.inputs[:2] for link in s.links} == {mask, value}
    assert mask.image.colorspace_settings.name == "Non-Color"
    assert value.outputs[0].default_value == (1.0 if cap else 0.0)
    assert list(head["likeness_hair_color"]) == pytest.approx(HAIR)


def test_a_hair_colour_texture_paints_the_cap(addon, scene, tmp_path):
    """Bundles with the photos' hair as a texture (``hair_color``) show it in the cap instead of the one colour."""
    root = tmp_path / "textured"
    write_bundle(root, edit_manifest=lambda m: with_hair_texture(m, root))
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    build.import_bundle(root, scene)
    _, mat = skin_material(addon)
    nodes = mat.node_tree.nodes
    inputs = {s.identifier: s for s in nodes[build.HAIR_MIX_NODE].inputs}
    (link,) = inputs["B_Color"].links
    assert link.from_node == nodes[build.HAIR_COLOR_NODE]
    assert link.from_node.image.filepath.endswith("skin_face_hair_color.png")
    assert link.from_node.image.colorspace_settings.name == "sRGB"


def test_bundle_without_hair_has_no_cap(addon, scene, tmp_path):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    build.import_bundle(write_bundle(tmp_path / "bald"), scene)
    head, mat = skin_material(addon)
    assert build.HAIR_MIX_NODE not in mat.node_tree.nodes
    assert "likeness_hair_color" not in head
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert bsdf.inputs["Base Color"].links[0].from_node.type == "TEX_IMAGE"


@pytest.mark.parametrize("color", [[0.1, 0.2], [0.1, 0.2, 1.5], "brown"])
def test_bad_hair_colour_is_refused(addon, scene, tmp_path, color):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    errors = __import__(f"{addon.__name__}.errors", fromlist=["errors"])
    root = write_bundle(tmp_path / "bad", edit_manifest=lambda m: m.update(hair={"color": color}))
    with pytest.raises(errors.BundleError, match="hair.color"):
        build.import_bundle(root, scene)


def strip(n: int = 10):
    """A strip of n quads along u (vertices 0..n on the bottom edge, n+1..2n+1 on the top), UVs = positions."""
    xs = np.arange(n + 1) / n
    uv = np.concatenate([np.stack([xs, np.zeros_like(xs)], 1), np.stack([xs, np.ones_like(xs)], 1)])
    faces = np.array([[i, i + 1, n + 2 + i, n + 1 + i] for i in range(n)], dtype=np.int32)
    return faces, faces.copy(), uv.astype(np.float32)


def test_hair_weights_follow_the_mask_and_slope_into_the_skin(addon):
    hair_shape = __import__(f"{addon.__name__}.hair_shape", fromlist=["hair_shape"])
    faces, faces_uv, uv = strip()
    mask = np.zeros((4, 100))
    mask[:, :45] = 1.0  # hair on the left 45 % of the texture
    args = (faces, faces_uv, uv, np.zeros(len(faces), np.int32), {0: mask}, len(uv))
    sharp = hair_shape.vertex_hair_weights(*args, smooth_rings=0)[:11]
    assert sharp[:5] == pytest.approx(1.0) and sharp[5:] == pytest.approx(0.0, abs=1e-9)
    soft = hair_shape.vertex_hair_weights(*args, smooth_rings=2)[:11]
    assert np.all(np.diff(soft) <= 1e-12) and soft[0] == pytest.approx(1.0)
    assert 0.0 < soft[6] < soft[5] < soft[4] < 1.0 and soft[7:] == pytest.approx(0.0, abs=1e-12)
    other = hair_shape.vertex_hair_weights(faces, faces_uv, uv, np.ones(len(faces), np.int32), {0: mask}, len(uv))
    assert not other.any()  # only faces of a material with a mask take its hair


def test_mask_rows_run_top_down_like_the_png(addon):
    hair_shape = __import__(f"{addon.__name__}.hair_shape", fromlist=["hair_shape"])
    mask = np.zeros((8, 8))
    mask[:4] = 1.0  # the image's top half
    values = hair_shape.sample_mask(mask, np.array([[0.5, 0.9], [0.5, 0.1]]))
    assert values == pytest.approx([1.0, 0.0])  # v up: the top of the image is v near 1


def with_top_hair(manifest: dict, root) -> None:
    with_hair(manifest, root)
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 255
    Image.fromarray(mask).save(root / "textures" / "skin_face_hair_mask.png")


def top_up_uvs(arrays: dict) -> None:
    """The box's top corners (+Y) at v = 0.9 of the texture, the others at v = 0.1."""
    corners = arrays["faces"] != -1
    top = arrays["vertices"][arrays["faces"][corners], 1] > 0
    arrays["uv"][arrays["faces_uv"][corners], 1] = np.where(top, 0.9, 0.1)


@pytest.mark.parametrize("thickness", [0.0, 0.015])
@pytest.mark.parametrize("rings", [0, None])
def test_hair_volume_lifts_the_surface_where_the_photos_saw_hair(addon, scene, tmp_path, thickness, rings,
                                                                monkeypatch):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    hair_shape = __import__(f"{addon.__name__}.hair_shape", fromlist=["hair_shape"])
    if rings is not None:  # no smoothing: the top corners alone carry the hair
        monkeypatch.setattr(hair_shape, "SMOOTH_RINGS", rings)
    root = tmp_path / "hairy"
    write_bundle(root, edit_manifest=lambda m: with_top_hair(m, root), edit_arrays=top_up_uvs)
    head = build.import_bundle(root, scene, hair_volume=thickness)[0]
    if thickness == 0:
        assert build.HAIR_VOLUME_MODIFIER not in head.modifiers and not head.vertex_groups
        return
    with np.load(root / "head.npz") as npz:
        arrays = {k: npz[k] for k in ("faces", "faces_uv", "uv", "face_material", "vertices")}
    mask = np.zeros((8, 8))
    mask[:4] = 1.0
    expected = hair_shape.vertex_hair_weights(arrays["faces"], arrays["faces_uv"], arrays["uv"],
                                              arrays["face_material"], {0: mask}, len(arrays["vertices"]))
    group = head.vertex_groups[build.HAIR_VOLUME_GROUP]
    weights = np.array([next((g.weight for g in v.groups if g.group == group.index), 0.0)
                        for v in head.data.vertices])
    assert weights == pytest.approx(expected, abs=1 / 64) and 0 < weights.max()
    top = np.array([v.co.z > 0 for v in head.data.vertices])  # Blender's +Z is the bundle's +Y
    assert weights[top].min() > weights[~top].max()  # the image's top half is hair: the box's top is lifted
    if rings == 0:
        assert weights[top] == pytest.approx(1.0) and weights[~top] == pytest.approx(0.0)
    modifier = head.modifiers[build.HAIR_VOLUME_MODIFIER]
    assert modifier.vertex_group == build.HAIR_VOLUME_GROUP and modifier.strength == pytest.approx(thickness)
    head.shape_key_clear()
    base = np.array([v.co[:] for v in head.data.vertices])
    lifted = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    moved = np.linalg.norm(np.array([v.co[:] for v in lifted.vertices]) - base, axis=1)
    assert moved == pytest.approx(thickness * weights, abs=1e-5)


def test_hair_volume_needs_hair(addon, scene, tmp_path):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    head = build.import_bundle(write_bundle(tmp_path / "bald"), scene, hair_volume=0.02)[0]
    assert not head.modifiers and not head.vertex_groups


def test_import_operator_offers_the_hair_volume(addon, scene, tmp_path):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    root = tmp_path / "hairy"
    write_bundle(root, edit_manifest=lambda m: with_top_hair(m, root), edit_arrays=top_up_uvs)
    assert bpy.ops.likeness.import_bundle(filepath=str(root), hair_volume=0.02) == {"FINISHED"}
    head = bpy.context.view_layer.objects.active
    assert head.modifiers[build.HAIR_VOLUME_MODIFIER].strength == pytest.approx(0.02)


def test_a_negative_hair_volume_is_refused_and_nothing_is_imported(addon, scene, tmp_path):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    errors = __import__(f"{addon.__name__}.errors", fromlist=["errors"])
    root = tmp_path / "hairy"
    write_bundle(root, edit_manifest=lambda m: with_top_hair(m, root))
    before = len(bpy.data.objects)
    with pytest.raises(errors.BundleError, match="not a thickness"):
        build.import_bundle(root, scene, hair_volume=-0.01)
    assert len(bpy.data.objects) == before


def test_an_edited_head_keeps_its_sources_hair_volume(addon, scene, tmp_path):
    build = __import__(f"{addon.__name__}.build", fromlist=["build"])
    edit_ops = __import__(f"{addon.__name__}.edit_ops", fromlist=["edit_ops"])
    root = tmp_path / "hairy"
    write_bundle(root, edit_manifest=lambda m: with_top_hair(m, root))
    source = build.import_bundle(root, scene, hair_volume=0.02)[0]
    source.modifiers[build.HAIR_VOLUME_MODIFIER].strength = 0.015  # the artist changed it
    edited = edit_ops.apply_bundle(scene, root, source.name)[0]
    assert edited != source and edited.modifiers[build.HAIR_VOLUME_MODIFIER].strength == pytest.approx(0.015)
