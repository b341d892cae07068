"""Edit with Text in Blender: the panel, api.edit / api.create_head against the real backend process and a tiny
random Stable Diffusion folder (tests/tiny_sd.py); the new head imports beside the old one with 53 working keys."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
import pytest

from .conftest import drive_timer, find_ict_model
from .test_ui_draw import draw

ICT_VERTEX_COUNT = 26719


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from tiny_sd import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny_sd")


def _coords(obj: bpy.types.Object) -> np.ndarray:
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    co = np.empty(len(evaluated.data.vertices) * 3)
    evaluated.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def _shape_keys_work(head: bpy.types.Object) -> None:
    keys = head.data.shape_keys.key_blocks
    assert len(keys) == 54 and len(head.data.vertices) == ICT_VERTEX_COUNT
    for key in keys[1:]:
        key.value = 0.0
    rest = _coords(head)
    keys["jawOpen"].value = 1.0
    opened = _coords(head)
    keys["jawOpen"].value = 0.0
    assert np.linalg.norm(opened - rest, axis=1).max() > 0.005  # metres: the jaw drops


def test_panel_draws_prompt_parts_and_buttons(addon, scene):
    log = draw(bpy.types.LIKENESS_PT_edit)
    for expected in ("prop:prompt", "prop:negative_prompt", "prop:albedo", "prop:shape", "prop:expression",
                     "prop:light", "prop:region", "prop:strength", "operator:likeness.edit_with_text",
                     "operator:likeness.create_from_text", "operator:likeness.edit_model_info"):
        assert expected in log
    assert "operator:likeness.apply_edit" not in log  # only once an edit is waiting


def test_api_edit_puts_a_new_head_beside_the_old_one(addon, scene, backend_python, real_bundle, tiny_sd, tmp_path):
    head, _ = addon.api.import_bundle(real_bundle)
    objects = addon.api.edit(head, "older, smiling", what=("albedo", "expression"), steps=2, size=32, device="cpu",
                             sd_model=tiny_sd, output_dir=tmp_path, timeout=600)
    new = objects[0]
    assert new != head and head.name in scene.objects, "the old head stays"
    assert new.location.x - head.location.x == pytest.approx(addon.edit_ops.BESIDE)
    _shape_keys_work(new)
    manifest = json.loads((Path(new["likeness_bundle"]) / "manifest.json").read_text())
    assert manifest["edit"]["prompt"] == "older, smiling" and manifest["edit"]["model"]["license"] == "mit"
    skin = next(m for m in new.data.materials if m.name.startswith("skin_face"))
    assert any(n.bl_idname == "ShaderNodeTexImage" for n in skin.node_tree.nodes)


def test_relight_by_words_from_the_panel_then_apply(addon, scene, backend_python, real_bundle, tmp_path):
    """No diffusion model: light words with 0 steps; the preview arrives, Apply imports the new head."""
    head, _ = addon.api.import_bundle(real_bundle)
    bpy.context.view_layer.objects.active = head
    settings = scene.likeness_edit
    settings.prompt, settings.albedo, settings.light, settings.steps = "warm sunset from the left", False, True, 0
    scene.likeness.output_dir = str(tmp_path)
    assert bpy.ops.likeness.edit_with_text() == {"FINISHED"}
    drive_timer(addon.jobs, scene)
    assert not scene.likeness.status_is_error, scene.likeness.status
    assert settings.result_bundle and bpy.data.images.get(addon.edit_ops.PREVIEW_IMAGE) is not None
    assert "operator:likeness.use_edit_light" in draw(bpy.types.LIKENESS_PT_edit)
    assert bpy.ops.likeness.use_edit_light() == {"FINISHED"}
    assert scene.world.name.startswith("Light: warm sunset")
    assert bpy.ops.likeness.apply_edit() == {"FINISHED"}
    new = bpy.context.view_layer.objects.active
    assert new != head and new.get("likeness_bundle") and not settings.result_bundle
    cameras = [o for o in new.users_collection[0].objects if o.type == "CAMERA"]
    light = np.array(cameras[0]["likeness_light"]).reshape(9, 3)
    assert light[0, 0] > light[0, 2] and light[3].mean() > 0  # warm, from the subject's left (+X)


def test_api_create_head_from_text(addon, scene, backend_python, tiny_sd, tmp_path):
    model = find_ict_model()
    if model is None:
        pytest.skip("no ICT head model")
    objects = addon.api.create_head("a 70-year-old woman with freckles", steps=2, size=32, texture_size=256,
                                    device="cpu", sd_model=tiny_sd, model=model, output_dir=tmp_path, timeout=600)
    _shape_keys_work(objects[0])
