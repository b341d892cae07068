"""Animator features in real bpy: tracks and Live Link Face CSVs onto shape keys, naming, the eye rig, and
Animate from Video against the real backend."""

from __future__ import annotations

import json
import math
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest
from shared_paths import SHARED

from .bundle_factory import write_bundle
from .conftest import find_ict_model

CLIP = SHARED / "data" / "video_dev" / "bbaf2n.mpg"


def synthetic_track(folder: Path, expressions: list[str], frames: int = 12, fps: float = 30.0) -> Path:
    """A track.json whose jawOpen ramps 0 → 1 and whose head turns 0 → 20° yaw; no head bundle."""
    from likeness import arkit
    from likeness.model.geometry import head_rotation
    from likeness.capture.track import arkit_matrix

    folder.mkdir(parents=True)
    ramp = np.linspace(0.0, 1.0, frames)
    weights = np.zeros((frames, len(expressions)))
    weights[:, expressions.index("jawOpen")] = ramp
    records = []
    for t in range(frames):
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = head_rotation(20.0 * ramp[t], 0.0, 0.0), (0.0, 0.0, -0.6)
        records.append({"frame": t, "time_s": t / fps, "tracked": True, "expression": weights[t].tolist(),
                        "arkit": (arkit_matrix(tuple(expressions)) @ weights[t]).tolist(),
                        "pose": {"yaw_deg": 20.0 * ramp[t], "pitch_deg": 0.0, "roll_deg": 0.0,
                                 "translation_m": [0.0, 0.0, -0.6], "model_to_camera": pose.tolist()},
                        "gaze": {"L": {"yaw_deg": 0, "pitch_deg": 0}, "R": {"yaw_deg": 0, "pitch_deg": 0}}})
    doc = {"format": "likeness.track", "version": 1,
           "video": {"path": str(CLIP), "fps": fps, "frame_count": frames, "size": [360, 288]},
           "camera": {"focal_px": 500.0, "principal_point_px": [180.0, 144.0]}, "expressions": expressions,
           "arkit_names": list(arkit.ARKIT_52), "head_bundle": None, "frames": records}
    (folder / "track.json").write_text(json.dumps(doc))
    return folder


def fcurves(id_data) -> dict[tuple[str, int], bpy.types.FCurve]:
    anim = id_data.animation_data
    bag = anim.action.layers[0].strips[0].channelbag(anim.action_slot)
    return {(c.data_path, c.array_index): c for c in bag.fcurves}


def arkit_mesh(names: list[str]) -> bpy.types.Object:
    """A triangle with one shape key per name (value 0): a stand-in for any ARKit rig."""
    mesh = bpy.data.meshes.new("rig")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("rig", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for name in names:
        obj.shape_key_add(name=name, from_mix=False).value = 0.0
    return obj


def test_track_makes_shape_key_fcurves_head_motion_and_a_video_camera(addon, scene, tmp_path):
    head = addon.build.import_bundle(write_bundle(tmp_path / "box"), scene)[0]
    track = synthetic_track(tmp_path / "track", ["jawOpen", "eyeBlink_L"])
    objects = addon.anim_ops.animate_from_track(track, scene, [head])
    curves = fcurves(head.data.shape_keys)
    assert set(curves) == {('key_blocks["jawOpen"].value', 0), ('key_blocks["eyeBlink_L"].value', 0)}
    jaw = curves[('key_blocks["jawOpen"].value', 0)]
    assert tuple(jaw.range()) == (1.0, 12.0) and len(jaw.keyframe_points) == 12
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, 12, 30)
    scene.frame_set(12)
    assert head.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(1.0)
    assert math.degrees(head.rotation_euler.z) == pytest.approx(20.0, abs=0.01)  # yaw: about Blender's Z
    assert head.location.y == pytest.approx(0.6, abs=1e-5)  # 0.6 m in front of the camera at the origin
    camera = objects[-1]
    assert scene.camera == camera and camera.type == "CAMERA"
    if CLIP.is_file():
        assert camera.data.background_images[0].source == "MOVIE_CLIP"


def test_livelink_csv_drives_any_spelling_and_exports_back(addon, scene, tmp_path):
    from likeness import arkit

    obj = arkit_mesh(["EyeBlinkLeft", "jawOpen", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R", "unrelated"])
    rng = np.random.default_rng(3)
    weights = rng.uniform(0, 1, (20, 52))
    csv = arkit.write_livelink_csv(tmp_path / "in.csv", [t / 30 for t in range(20)],
                                   [dict(zip(arkit.ARKIT_52, row)) for row in weights.tolist()], None, 30.0)
    scene.render.fps, scene.render.fps_base, scene.frame_start = 30, 1.0, 1
    assert addon.animation.apply_livelink(csv, [obj], scene) == 5
    curves = fcurves(obj.data.shape_keys)
    assert ('key_blocks["unrelated"].value', 0) not in curves
    assert scene.frame_end == 20
    out = addon.animation.export_livelink(obj, tmp_path / "out.csv", scene)
    _, columns = arkit.read_livelink_csv(out, 30.0)
    for name in ("eyeBlinkLeft", "jawOpen", "mouthSmileRight", "browInnerUp"):
        assert columns[name] == pytest.approx(weights[:, arkit.ARKIT_52.index(name)], abs=1e-4)
    assert columns["tongueOut"] == pytest.approx([0.0] * 20)


def test_arkit_naming_renames_keys_and_adds_whole_brow_and_cheek_keys(addon, scene, real_bundle):
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs.shape_key_names = "camel"
    try:
        camel = addon.build.import_bundle(real_bundle, scene)[0]
    finally:
        prefs.shape_key_names = "ict"
    keys = set(camel.data.shape_keys.key_blocks.keys())
    assert {"eyeBlinkLeft", "browInnerUp", "cheekPuff", "cheekPuffRight"} <= keys
    head = addon.build.import_bundle(real_bundle, scene)[0]
    blocks = head.data.shape_keys.key_blocks
    assert "eyeBlink_L" in blocks and "cheekPuff_L" in blocks and "cheekPuff" not in blocks  # the default: ICT
    addon.shape_names.apply_naming(head, "livelink")
    names = {b.name for b in blocks}
    from likeness import arkit
    assert {arkit.spell(n, "livelink") for n in arkit.ARKIT_52 if n != "tongueOut"} <= names
    assert "CheekPuffLeft" in names and "eyeBlink_L" not in names
    co = {n: np.array([v.co[:] for v in blocks[n].data]) for n in ("Basis", "CheekPuff", "CheekPuffLeft",
                                                                     "CheekPuffRight")}
    whole = co["CheekPuff"] - co["Basis"]
    assert np.abs(whole).max() > 1e-3
    assert whole == pytest.approx(co["CheekPuffLeft"] + co["CheekPuffRight"] - 2 * co["Basis"], abs=1e-6)
    addon.shape_names.apply_naming(head, "ict")
    assert "eyeBlink_L" in blocks and "cheekPuff" in blocks


def _gaze(obj: bpy.types.Object, eye: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Unit direction from the eyeball's centre to its rest front point, in the evaluated (posed) mesh."""
    bpy.context.view_layer.update()
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    co = np.array([evaluated.vertices[i].co[:] for i in eye])
    front = co[np.argmin(rest[eye, 1])]
    direction = front - co.mean(0)
    return direction / np.linalg.norm(direction)


def test_eye_bones_follow_the_eye_look_weights(addon, scene, real_bundle):
    head = addon.build.import_bundle(real_bundle, scene)[0]
    arm = addon.rig.add_rig(head, bpy.context.view_layer)
    assert {b.name for b in arm.data.bones} == set(addon.rig.BONES)
    rest = np.array([v.co[:] for v in head.data.vertices])
    eyes = addon.rig.eye_vertices(head)
    assert rest[eyes["L"], 0].mean() > 0.02 and rest[eyes["R"], 0].mean() < -0.02
    blocks = head.data.shape_keys.key_blocks
    for block in blocks:  # the import set the photo's expression, gaze included
        block.value = 0.0
    ahead = _gaze(head, eyes["L"], rest)
    assert ahead[1] < -0.99  # looks toward -Y
    blocks["eyeLookOut_L"].value = 1.0  # the left eye looks to the subject's left (+X) by 30°
    turned = _gaze(head, eyes["L"], rest)
    assert math.degrees(math.atan2(turned[0], -turned[1])) == pytest.approx(30.0, abs=1.0)
    blocks["eyeLookOut_L"].value, blocks["eyeLookUp_R"].value = 0.0, 0.6  # the right eye looks up by 15°
    up = _gaze(head, eyes["R"], rest)
    assert math.degrees(math.atan2(up[2], -up[1])) == pytest.approx(15.0, abs=1.0)
    assert _gaze(head, eyes["L"], rest) == pytest.approx(ahead, abs=1e-4)


def test_animate_video_api_runs_the_real_backend(addon, scene, backend_python, tmp_path):
    model = find_ict_model()
    if model is None or not CLIP.is_file():
        pytest.skip("needs the ICT model and the GRID clips in ../shared")
    capture, video = cv2.VideoCapture(str(CLIP)), tmp_path / "talk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (360, 288))
    for _ in range(8):
        writer.write(capture.read()[1])
    writer.release()
    capture.release()
    head, camera = addon.api.animate_video(video, tmp_path / "out", model=model, texture_size=256, encoder=False)
    track = json.loads(next((tmp_path / "out").glob("*/track.json")).read_text())
    assert "expression_encoder" not in track["evidence"]  # the encoder was asked off
    assert head.parent is not None and head.parent.type == "ARMATURE"
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, 8, 25)
    assert scene.camera == camera and not [m for m in scene.timeline_markers if m.camera is not None]
    jaw = fcurves(head.data.shape_keys)[('key_blocks["jawOpen"].value', 0)]
    assert tuple(jaw.range()) == (1.0, 8.0)
    assert fcurves(head.parent)[("rotation_euler", 2)] is not None
    assert scene.likeness.progress == 1.0 and "Animated 8 frames" in scene.likeness.status


def test_animation_panel_and_csv_operators(addon, scene, tmp_path):
    from likeness import arkit

    from .test_ui_draw import draw

    log = draw(bpy.types.LIKENESS_PT_animation)
    for expected in ("prop:video", "prop:target", "prop:add_rig", "prop:encoder",
                     "operator:likeness.animate_video",
                     "operator:likeness.apply_track", "operator:likeness.import_livelink",
                     "operator:likeness.export_livelink", "operator:likeness.add_rig"):
        assert expected in log
    obj = arkit_mesh(["jawOpen", "EyeBlinkRight"])
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    csv = arkit.write_livelink_csv(tmp_path / "take.csv", [0.0, 0.5, 1.0],
                                   [{"jawOpen": w, "eyeBlinkRight": 1 - w} for w in (0.0, 0.5, 1.0)], None, 24.0)
    scene.render.fps, scene.render.fps_base = 24, 1.0
    assert bpy.ops.likeness.import_livelink(filepath=str(csv)) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end) == (1, 25)
    scene.frame_set(13)
    assert obj.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(0.5)
    assert bpy.ops.likeness.export_livelink(filepath=str(tmp_path / "out.csv")) == {"FINISHED"}
    times, columns = arkit.read_livelink_csv(tmp_path / "out.csv", 24.0)
    assert len(times) == 25 and columns["eyeBlinkRight"][-1] == pytest.approx(0.0, abs=1e-5)
    bpy.ops.object.select_all(action="DESELECT")
    with pytest.raises(RuntimeError, match="None of the selected objects"):  # the operator reports an error
        bpy.ops.likeness.import_livelink(filepath=str(csv))
