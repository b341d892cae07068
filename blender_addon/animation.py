"""Animation in Blender: tracks and Live Link Face CSVs onto shape keys, head motion, the video camera, an
eye/jaw rig driven by the eyeLook*/jawOpen weights, and ARKit shape-key names (docs/animation.md).

A *series* is ``{name: values (T,)}`` with ICT names (``eyeBlink_L``, ``cheekPuff_L``) and/or camelCase ARKit
names (``eyeBlinkLeft``, ``cheekPuff``); :func:`source_for` finds the series of any shape key in any spelling.
F-curves are written with ``foreach_set`` (no per-key Python loop).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from . import convert
from .arkit import TABLE
from .errors import LikenessError

TRACK_FORMAT, TRACK_VERSION = "likeness.track", 1
#: Custom property of objects animated from a track: the track folder.
TRACK_PROPERTY = "likeness_track"
GROUP = "Likeness"
#: Jaw bone rotation (degrees) at jawOpen = 1; the jaw bone deforms nothing (the shape keys do).
JAW_OPEN_DEG = 20.0
EYE_MATERIALS = ("sclera", "iris", "cornea")
_HALF = re.compile(r"^(browInnerUp|cheekPuff)[_.\- ]?(L|R|Left|Right)$", re.IGNORECASE)
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def read_track(folder: str | Path) -> dict:
    """The ``track.json`` of a track folder (``likeness track``), checked for format and size."""
    path = Path(folder) / "track.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LikenessError(f"Cannot read the track {path}: {exc}", "Pick a folder written by `likeness track`.")
    if doc.get("format") != TRACK_FORMAT or doc.get("version") != TRACK_VERSION or not doc.get("frames"):
        raise LikenessError(f"{path} is not a version {TRACK_VERSION} Likeness track.", "Track the video again.")
    doc["root"] = str(Path(folder).resolve())
    return doc


def track_series(doc: dict) -> dict[str, np.ndarray]:
    """ICT- and ARKit-named weight series (T,) of a track."""
    expression = np.array([f["expression"] for f in doc["frames"]], np.float32)
    arkit = np.array([f["arkit"] for f in doc["frames"]], np.float32)
    return {**dict(zip(doc["expressions"], expression.T)), **dict(zip(doc["arkit_names"], arkit.T))}


def source_for(key_name: str, series: dict[str, np.ndarray]) -> str | None:
    """The series that drives a shape key of this name (any ARKit spelling, ICT halves), or None."""
    if key_name in series:
        return key_name
    name = TABLE.canonical(key_name)
    if name in series:
        return name
    match = _HALF.match(key_name)
    if match:
        stem = "browInnerUp" if match.group(1).lower() == "browinnerup" else "cheekPuff"
        half = f"{stem}_{match.group(2)[0].upper()}"
        return half if half in series else stem if stem in series else None
    return None


def keyframes(id_data: bpy.types.ID, data_path: str, frames: np.ndarray, values: np.ndarray,
              index: int = 0) -> bpy.types.FCurve:
    """Replace the F-curve ``data_path[index]`` of ``id_data`` by linear keys at ``frames`` (T,)."""
    anim = id_data.animation_data or id_data.animation_data_create()
    if anim.action is None:
        anim.action = bpy.data.actions.new(f"{id_data.name} {GROUP}")
    curve = anim.action.fcurve_ensure_for_datablock(id_data, data_path, index=index, group_name=GROUP)
    points = curve.keyframe_points
    points.clear()
    points.add(len(frames))
    points.foreach_set("co", np.stack([frames, values], 1).astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(len(frames), _LINEAR, np.int32))
    curve.update()
    return curve


def animate_shape_keys(obj: bpy.types.Object, series: dict[str, np.ndarray], frames: np.ndarray) -> list[str]:
    """Key every shape key of ``obj`` that has a series; returns the names of the keys animated.

    ``series`` values are (T,) per name; ``frames`` (T,) are Blender frame numbers.
    """
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        raise LikenessError(f"'{obj.name}' has no shape keys.", "Select a mesh with ARKit-named shape keys.")
    # a whole browInnerUp/cheekPuff key beside its halves (ARKit-named Likeness heads) stays at 0: the halves move
    split = {TABLE.canonical(m.group(1)) for b in keys.key_blocks if (m := _HALF.match(b.name))}
    done = []
    for block in keys.key_blocks[1:]:
        source = source_for(block.name, series)
        if source is not None and TABLE.canonical(block.name) not in split:
            keyframes(keys, f'key_blocks["{bpy.utils.escape_identifier(block.name)}"].value', frames,
                      series[source])
            done.append(block.name)
    return done


def animate_head_motion(obj: bpy.types.Object, doc: dict, frames: np.ndarray) -> None:
    """Key ``obj``'s location and rotation so the head moves as in the video seen by :func:`video_camera`.

    With the camera's world matrix ``H`` (head frame → Blender axes), the head object's matrix at frame t is
    ``H · model_to_camera(t) · H⁻¹`` (metres).
    """
    h = convert.HEAD_TO_BLENDER
    mats = h @ np.array([f["pose"]["model_to_camera"] for f in doc["frames"]]) @ np.linalg.inv(h)
    obj.rotation_mode = "XYZ"
    eulers, previous = [], None
    for m in mats:  # per frame (not per vertex): Euler angles continuous from frame to frame
        rotation = Matrix(m[:3, :3].tolist())
        previous = rotation.to_euler("XYZ", previous) if previous is not None else rotation.to_euler("XYZ")
        eulers.append(tuple(previous))
    eulers = np.array(eulers)
    for axis in range(3):
        keyframes(obj, "location", frames, mats[:, axis, 3], axis)
        keyframes(obj, "rotation_euler", frames, eulers[:, axis], axis)


def video_camera(doc: dict, name: str, collection: bpy.types.Collection, start: int = 1) -> bpy.types.Object:
    """A still camera seeing the head as the video did, with the video as its background (from ``start``)."""
    width, height = doc["video"]["size"]
    cam = bpy.data.cameras.new(name)
    cam.sensor_fit, cam.sensor_width = "AUTO", convert.SENSOR_WIDTH_MM
    cam.lens = convert.camera_lens_mm(doc["camera"]["focal_px"], width, height)
    cam.shift_x, cam.shift_y = convert.camera_shift(doc["camera"]["principal_point_px"], width, height)
    cam.clip_start, cam.clip_end, cam.display_size = 0.01, 100.0, 0.1
    video = Path(doc["video"]["path"])
    if video.is_file():
        clip = bpy.data.movieclips.load(str(video), check_existing=True)
        clip.frame_start = start
        background = cam.background_images.new()
        background.source, background.clip, background.alpha = "MOVIE_CLIP", clip, 0.8
        cam.show_background_images = True
    obj = bpy.data.objects.new(name, cam)
    obj.matrix_world = Matrix(convert.HEAD_TO_BLENDER.tolist())
    collection.objects.link(obj)
    return obj


def set_scene_timing(scene: bpy.types.Scene, fps: float, frame_count: int, start: int = 1) -> None:
    """Scene frame rate = the video's (``fps_base`` carries 29.97-style rates) and range = its frames."""
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    scene.frame_start, scene.frame_end = start, start + frame_count - 1


def apply_track(doc: dict, objects: list[bpy.types.Object], scene: bpy.types.Scene, head_motion: bool = True,
                camera: bool = True, start: int = 1) -> dict:
    """Animate ``objects`` (shape keys; the first also moves, or its armature when rigged) from a track, set
    the scene's rate and range, and optionally add the video camera. Returns ``{"keys": n, "camera": obj}``."""
    frames = start + np.arange(len(doc["frames"]), dtype=np.float32)
    series = track_series(doc)
    animated = 0
    for obj in objects:
        if obj.type == "MESH" and obj.data.shape_keys is not None:
            animated += len(animate_shape_keys(obj, series, frames))
        obj[TRACK_PROPERTY] = doc["root"]
    if animated == 0:
        raise LikenessError("None of the selected objects has ARKit- or ICT-named shape keys.",
                            "Select a Likeness head or a mesh with ARKit shape keys (any spelling).")
    if head_motion and objects:
        mover = objects[0].parent if objects[0].parent and objects[0].parent.type == "ARMATURE" else objects[0]
        animate_head_motion(mover, doc, frames)
    set_scene_timing(scene, float(doc["video"]["fps"]), len(frames), start)
    scene.render.resolution_x, scene.render.resolution_y = doc["video"]["size"]
    cam = None
    if camera:
        collection = objects[0].users_collection[0] if objects else scene.collection
        cam = video_camera(doc, f"{Path(doc['video']['path']).stem} video", collection, start)
        scene.camera = cam
    return {"keys": animated, "camera": cam}


def apply_livelink(path: str | Path, objects: list[bpy.types.Object], scene: bpy.types.Scene,
                   start: int | None = None) -> int:
    """Key the ARKit-named shape keys of ``objects`` from a Live Link Face CSV (times from its timecodes, frames
    at the scene's frame rate);
    returns how many keys were animated; the scene range becomes the take's. Head and eye columns are not applied
    (see docs/animation.md)."""
    fps = scene.render.fps / scene.render.fps_base
    try:
        times, columns = TABLE.read_livelink_csv(path, default_fps=fps)  # the take's own timecode rate
    except (OSError, ValueError) as exc:
        raise LikenessError(f"Cannot read {Path(path).name}: {exc}", "Pick a Live Link Face CSV.") from exc
    start = scene.frame_start if start is None else start
    frames = start + np.array(times, np.float32) * fps
    series = {name: np.array(values, np.float32) for name, values in columns.items() if name in TABLE.ARKIT_52}
    animated = sum(len(animate_shape_keys(obj, series, frames)) for obj in objects
                   if obj.type == "MESH" and obj.data.shape_keys is not None)
    if animated == 0:
        raise LikenessError("None of the selected objects has ARKit-named shape keys.",
                            "Select a mesh with ARKit shape keys (any spelling).")
    scene.frame_start, scene.frame_end = start, math.ceil(float(frames[-1]))
    return animated


def export_livelink(obj: bpy.types.Object, path: str | Path, scene: bpy.types.Scene) -> Path:
    """Write the shape-key animation of ``obj`` over the scene's frame range as a Live Link Face CSV (pose
    columns 0). ARKit shapes the mesh lacks are 0; split ICT halves are averaged."""
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        raise LikenessError(f"'{obj.name}' has no shape keys.", "Select a head with ARKit-named shape keys.")
    fps = scene.render.fps / scene.render.fps_base
    frames = np.arange(scene.frame_start, scene.frame_end + 1)
    curves = {}
    action = keys.animation_data.action if keys.animation_data else None
    for block in keys.key_blocks[1:]:
        path_ = f'key_blocks["{bpy.utils.escape_identifier(block.name)}"].value'
        curve = _find_fcurve(action, keys, path_)
        curves[block.name] = (np.array([curve.evaluate(float(f)) for f in frames]) if curve
                              else np.full(len(frames), block.value))
    whole = {TABLE.canonical(k): k for k in curves if TABLE.canonical(k)}
    halves: dict[str, list[str]] = {}
    for k in curves:
        match = _HALF.match(k)
        if match and TABLE.canonical(k) is None:
            halves.setdefault(TABLE.canonical(match.group(1)), []).append(k)
    shapes = np.zeros((len(frames), len(TABLE.ARKIT_52)))
    for j, name in enumerate(TABLE.ARKIT_52):  # the whole shape where the mesh has it, else its halves' mean
        sources = [whole[name]] if name in whole else halves.get(name, [])
        if sources:
            shapes[:, j] = np.mean([curves[k] for k in sources], axis=0)
    return TABLE.write_livelink_csv(path, ((frames - frames[0]) / fps).tolist(),
                                    [dict(zip(TABLE.ARKIT_52, row)) for row in shapes.tolist()], None, fps)


def _find_fcurve(action: bpy.types.Action | None, id_data: bpy.types.ID, data_path: str) -> bpy.types.FCurve | None:
    """The F-curve of ``data_path`` in the action slot ``id_data`` uses, if any."""
    if action is None:
        return None
    slot = id_data.animation_data.action_slot
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot) if slot else None
            found = bag.fcurves.find(data_path) if bag else None
            if found:
                return found
    return None
