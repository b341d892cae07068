"""The hair cap: a bundle with hair (a hair mask texture and ``hair.color``) mixes the hair colour over the skin."""

from __future__ import annotations

import bpy
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
