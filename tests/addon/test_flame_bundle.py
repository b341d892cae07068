"""A FLAME-topology bundle (``likeness reconstruct --model flame --encoder smirk``) imports in Blender.

The FLAME is the synthetic one derived from ICT (tests/flame_synthetic.py) and SMIRK a random checkpoint in
SMIRK_em1.pt's layout with zero heads (it reads the mean head), so the mechanics are real and the bundle is made
by the real backend CLI; real FLAME and SMIRK weights are not available on the test machines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import DEV_PHOTO

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def flame_setup(tmp_path_factory) -> tuple[Path, dict]:
    """A data folder with the synthetic FLAME and a SMIRK checkpoint installed by the CLI, and its environment."""
    from shared_paths import find_ict_model

    ict_path = find_ict_model()
    if ict_path is None or not DEV_PHOTO.is_file():
        pytest.skip("needs the ICT head model and the dev photos in ../shared")
    from flame_synthetic import write_ict_flame, write_smirk_checkpoint
    from likeness.model.headmodel import load_ict

    root = tmp_path_factory.mktemp("flame")
    write_ict_flame(root / "src", load_ict(ict_path))
    checkpoint = write_smirk_checkpoint(root / "SMIRK_em1.pt", neutral=True)
    env = {"LIKENESS_DATA_DIR": str(root / "data"), "LIKENESS_ICT_MODEL": str(ict_path)}
    for command in (["models", "install", "flame", "--from", str(root / "src")],
                    ["models", "install", "smirk", "--from", str(checkpoint)]):
        done = subprocess.run([sys.executable, "-m", "likeness", *command], capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    return root, env


@pytest.fixture(scope="module")
def flame_bundle(flame_setup) -> Path:
    root, env = flame_setup
    done = subprocess.run([sys.executable, "-m", "likeness", "reconstruct", "--model", "flame", "--encoder", "smirk",
                           str(DEV_PHOTO), "-o", str(root / "b"), "--texture-size", "256", "--device", "cpu"],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "b"


def test_flame_bundle_imports_with_its_keys_and_licence(addon, scene, flame_bundle):
    import bpy

    manifest = json.loads((flame_bundle / "manifest.json").read_text())
    assert manifest["head_model"]["name"] == "flame" and manifest["head_model"]["non_commercial"] is True
    head, camera = addon.api.import_bundle(flame_bundle)
    assert len(head.data.vertices) == manifest["mesh"]["vertex_count"]
    assert len(head.data.polygons) == manifest["mesh"]["face_count"]
    blocks = head.data.shape_keys.key_blocks
    names = [b.name for b in blocks[1:]]
    assert names == manifest["expressions"]
    assert {"flame_exp_00_pos", "flame_exp_49_neg", "eyelid_L", "eyelid_R", "jaw_open", "jaw_left"} <= set(names)
    assert {"jawOpen", "eyeBlink_L", "mouthSmile_R"} <= set(names)  # ICT's ARKit shapes, carried onto FLAME
    assert {b.name: b.value for b in blocks[1:]} == pytest.approx(manifest["photos"][0]["expression"], abs=1e-6)
    blocks["jaw_open"].value = 1.0  # the linearised jaw key opens the mouth: the chin goes down
    evaluated = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    moved = np.array([v.co.z for v in evaluated.vertices]) - np.array([v.co.z for v in head.data.vertices])
    head.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh_clear()
    assert moved.min() < -0.003
    uv = np.empty(len(head.data.loops) * 2, dtype=np.float32)
    head.data.uv_layers.active.data.foreach_get("uv", uv)
    assert 0.0 <= uv.min() and uv.max() <= 1.0 and uv.std() > 0.05
    assert any(n.bl_idname == "ShaderNodeTexImage" and n.image for m in head.data.materials
               for n in m.node_tree.nodes)
    assert head["likeness_non_commercial"] and "non-commercial" in head["likeness_license"]
    assert camera.type == "CAMERA"
    photo = manifest["photos"][0]
    assert photo["fit"]["evidence"][0] == "smirk" and len(photo["arkit"]) == 53


def test_flame_head_from_the_warm_backend(addon, scene, flame_setup, backend_python, monkeypatch, tmp_path):
    """Scripts get a FLAME head from the add-on's warm backend: ``api.reconstruct(..., model="flame",
    encoder="smirk")``."""
    _, env = flame_setup
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    addon.session.SESSION.stop()  # a fresh backend with this environment
    try:
        head, camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path, texture_size=128, model="flame",
                                             encoder="smirk")
    finally:
        addon.session.SESSION.stop()
    assert head["likeness_head_model"] == "flame" and head["likeness_non_commercial"]
    assert "jaw_open" in head.data.shape_keys.key_blocks and camera.type == "CAMERA"


def test_panel_option_asks_for_a_flame_head_from_smirk(addon, scene, monkeypatch, tmp_path):
    """The sidebar's "SMIRK + FLAME" option sends model "flame" and encoder "smirk" with the reconstruct job."""
    import bpy

    sent = {}
    monkeypatch.setattr(addon.jobs, "start_reconstruct", lambda *args: sent.setdefault("args", args))
    scene.likeness.smirk_flame = True
    photo = scene.likeness.photos.add()
    photo.filepath = str(DEV_PHOTO)
    assert bpy.ops.likeness.reconstruct(output_dir=str(tmp_path)) == {"FINISHED"}
    assert sent["args"][4] == "flame" and sent["args"][6] == "smirk"
