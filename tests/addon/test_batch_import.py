"""Batch Import and the bpy batch-scene example, in headless bpy, on bundles the real `likeness batch` wrote."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from PIL import Image

from .conftest import REPO
from shared_paths import DEV_IMAGES, find_ict_model

PHOTOS = ["dev_002_london_009_03.jpg", "dev_006_london_025_03.jpg"]


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory):
    """Two real bundles from `likeness batch`, a bundle that does not validate, a half-written one."""
    model = find_ict_model()
    if model is None or not all((DEV_IMAGES / p).is_file() for p in PHOTOS):
        pytest.skip("needs the ICT head model and the dev photos")
    root = tmp_path_factory.mktemp("batch")
    spec = root / "spec"
    spec.mkdir()
    for i, name in enumerate(PHOTOS):
        (spec / f"person{i}.jpg").symlink_to(DEV_IMAGES / name)
    out = root / "out"
    done = subprocess.run([sys.executable, "-m", "likeness", "batch", str(spec), "-o", str(out), "--texture-size",
                           "256", "--workers", "1", "--model", str(model), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (out / "zz_broken").mkdir()
    (out / "zz_broken" / "manifest.json").write_text('{"format": "likeness.bundle", "version": 999}')
    (out / ".person9.tmp-123").mkdir()  # a killed writer's temporary folder: not a bundle
    (out / ".person9.tmp-123" / "manifest.json").write_text("{}")
    return out


def _columns_with_head(image: np.ndarray, cells: int) -> list[bool]:
    """Whether each of ``cells`` equal vertical strips of a render holds something opaque (a head)."""
    alpha = image[..., 3] if image.shape[-1] == 4 else np.ones(image.shape[:2])
    return [bool((strip > 0.5).mean() > 0.02) for strip in np.array_split(alpha, cells, axis=1)]


def test_batch_import_grid_collections_and_contact_sheet(addon, scene, batch_folder, tmp_path):
    scene.render.film_transparent = True
    sheet = tmp_path / "sheet.png"
    result = addon.api.batch_import(batch_folder, scene, spacing=0.5, contact_sheet=sheet, cell=64, samples=2)
    assert [h.name for h in result.heads] == ["person0 head", "person1 head"]
    assert [h.users_collection[0].name for h in result.heads] == ["person0", "person1"]
    assert [p.split("/")[-1] for p, _ in result.skipped] == ["zz_broken"]
    assert "999" in result.skipped[0][1]  # the reader's reason: an unknown bundle version
    a, b = (h.matrix_world.translation for h in result.heads)
    assert abs((b - a).x - 0.5) < 1e-6 and abs((b - a).z) < 1e-6
    for head in result.heads:  # photo cameras move with their head: each still sees its own head in the middle
        cam = bpy.data.objects[head.name.replace(" head", " photo 1")]
        x, y, _ = world_to_camera_view(scene, cam, head.matrix_world.translation)
        assert 0.2 < x < 0.8 and 0.1 < y < 0.9
    assert scene.camera == result.camera and result.camera.data.type == "ORTHO"
    image = np.asarray(Image.open(sheet).convert("RGBA"), np.float32) / 255
    assert image.shape[:2] == (64, 128)
    assert _columns_with_head(image, 2) == [True, True]  # both heads are in the picture, each in its cell


def test_batch_import_operator_and_an_empty_folder(addon, scene, batch_folder, tmp_path):
    assert bpy.ops.likeness.batch_import(directory=str(batch_folder), columns=1) == {"FINISHED"}
    heads = [o for o in scene.objects if o.name.endswith(" head")]
    assert len(heads) == 2 and abs(heads[0].location.x - heads[1].location.x) < 1e-6  # one column
    with pytest.raises(RuntimeError, match="No Likeness bundles"):
        bpy.ops.likeness.batch_import(directory=str(tmp_path))


def test_the_batch_scene_example_renders_heads_with_different_expressions(addon, scene, batch_folder, tmp_path):
    spec = importlib.util.spec_from_file_location("batch_scene", REPO / "examples" / "batch_scene.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    output = tmp_path / "scene.png"
    done = example.build_scene(addon.api, batch_folder, output, cell=64, samples=2)
    assert done["heads"] == ["person0 head", "person1 head"] and output.is_file()
    smile = bpy.data.objects["person1 head"].data.shape_keys.key_blocks
    values = {example._key(k.name): k.value for k in smile[1:]}
    assert values["mouthsmilel"] == pytest.approx(0.9) and values["jawopen"] == 0.0
    neutral = bpy.data.objects["person0 head"].data.shape_keys.key_blocks
    assert all(k.value == 0.0 for k in neutral[1:])
    image = np.asarray(Image.open(output).convert("RGB"), np.float32) / 255
    assert image.shape[:2] == (64, 128) and image.std() > 0.02  # a picture, not a blank frame
