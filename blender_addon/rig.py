"""An optional armature for a Likeness head: root, neck, head, jaw and one bone per eye.

The eyeballs (polygons with the sclera, iris and cornea materials) are weighted to their eye bone and
everything else to the head bone, so exporters (FBX, glTF) carry head and eye motion as bones. ICT's eyeLook*
shapes only move the lids; here each eye bone turns by drivers from those weights: yaw
``EYE_LOOK_YAW_DEG · (out − in)`` toward the eye's outer side, pitch ``EYE_LOOK_PITCH_DEG · (up − down)``
(the angles the backend's gaze measurement maps to weight 1, so the measured gaze comes back as eyeball
rotation). The jaw bone follows ``jawOpen`` (``JAW_OPEN_DEG`` at 1) but deforms nothing: the jawOpen shape key
moves the jaw; the bone is there for export and for attaching things. Blender axes: metres, Z up, the face
looks toward −Y, +X is the subject's left.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Vector

from .animation import EYE_MATERIALS, JAW_OPEN_DEG
from .arkit import TABLE
from .errors import LikenessError

BONES = ("root", "neck", "head", "jaw", "eye.L", "eye.R")


def eye_vertices(obj: bpy.types.Object) -> dict[str, np.ndarray]:
    """Vertex indices of each eyeball (``"L"``/``"R"``: the subject's side, +X is left) of a Likeness head."""
    mesh = obj.data
    eye_slots = [i for i, m in enumerate(mesh.materials) if m and m.name.split(".")[0] in EYE_MATERIALS]
    if not eye_slots:
        raise LikenessError(f"'{obj.name}' has no eye materials.", "Use a head imported from a Likeness bundle.")
    material = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("material_index", material)
    totals = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    loops = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    eye = np.unique(loops[np.repeat(np.isin(material, eye_slots), totals)])
    co = _rest_positions(obj)
    return {"L": eye[co[eye, 0] > 0], "R": eye[co[eye, 0] <= 0]}


def _rest_positions(obj: bpy.types.Object) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def add_rig(obj: bpy.types.Object, view_layer: bpy.types.ViewLayer) -> bpy.types.Object:
    """Create (or return the existing) armature of the head ``obj``; ``obj`` becomes its child."""
    if obj.parent is not None and obj.parent.type == "ARMATURE" and "eye.L" in obj.parent.data.bones:
        return obj.parent
    eyes = eye_vertices(obj)
    co = _rest_positions(obj)
    centres = {side: Vector(co[ids].mean(0).tolist()) for side, ids in eyes.items()}
    mid = (centres["L"] + centres["R"]) / 2
    low, high = float(co[:, 2].min()), float(co[:, 2].max())
    back = mid.y + 0.08  # the neck's axis lies about 8 cm behind the eyes

    arm = bpy.data.objects.new(f"{obj.name} rig", bpy.data.armatures.new(f"{obj.name} rig"))
    for collection in obj.users_collection:
        collection.objects.link(arm)
    arm.matrix_world = obj.matrix_world.copy()
    arm.data.display_type = "STICK"
    previous = view_layer.objects.active
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    edit = arm.data.edit_bones
    layout = {"root": ((0, back, low), (0, back + 0.05, low), None),
              "neck": ((0, back, low), (0, back, mid.z - 0.09), "root"),
              "head": ((0, back, mid.z - 0.09), (0, back, high), "neck"),
              "jaw": ((0, mid.y + 0.07, mid.z - 0.06), (0, mid.y - 0.03, mid.z - 0.11), "head")}
    layout.update({f"eye.{s}": (tuple(c), tuple(c + Vector((0, -0.025, 0))), "head") for s, c in centres.items()})
    for name, (head, tail, parent) in layout.items():
        bone = edit.new(name)
        bone.head, bone.tail, bone.roll = head, tail, 0.0
        bone.parent = edit[parent] if parent else None
        bone.use_deform = name in ("head", "eye.L", "eye.R")
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = previous

    everything = np.ones(len(co), bool)
    for side, ids in eyes.items():
        obj.vertex_groups.new(name=f"eye.{side}").add(ids.tolist(), 1.0, "REPLACE")
        everything[ids] = False
    obj.vertex_groups.new(name="head").add(np.flatnonzero(everything).tolist(), 1.0, "REPLACE")
    obj.modifiers.new("Likeness rig", "ARMATURE").object = arm
    obj.parent = arm
    obj.matrix_parent_inverse = arm.matrix_world.inverted()
    _drivers(obj, arm)
    return arm


def _drivers(obj: bpy.types.Object, arm: bpy.types.Object) -> None:
    """Eye bones from eyeLook*, jaw from jawOpen (shape-key values of ``obj``, any ARKit spelling)."""
    keys = obj.data.shape_keys
    by_arkit = {TABLE.canonical(b.name): b.name for b in keys.key_blocks} if keys else {}
    yaw, pitch = math.radians(TABLE.EYE_LOOK_YAW_DEG), math.radians(TABLE.EYE_LOOK_PITCH_DEG)
    for side, word in (("L", "Left"), ("R", "Right")):
        toward_left = ("Out", "In") if side == "L" else ("In", "Out")  # yaw > 0: toward the subject's left
        _rotate(arm, f"eye.{side}", (0, 0, 1), yaw, {"a": f"eyeLook{toward_left[0]}{word}",
                                                     "b": f"eyeLook{toward_left[1]}{word}"}, keys, by_arkit)
        _rotate(arm, f"eye.{side}", (-1, 0, 0), pitch, {"a": f"eyeLookUp{word}", "b": f"eyeLookDown{word}"},
                keys, by_arkit)
    _rotate(arm, "jaw", (1, 0, 0), math.radians(JAW_OPEN_DEG), {"a": "jawOpen"}, keys, by_arkit)


def _rotate(arm: bpy.types.Object, bone: str, axis: tuple[float, float, float], scale: float,
            variables: dict[str, str], keys: bpy.types.Key | None, by_arkit: dict[str, str]) -> None:
    """Driver turning ``bone`` about the armature-space ``axis`` by ``scale · (a − b)`` radians, where a and b
    are the values of the shape keys of these ARKit names (a missing key counts 0)."""
    pose = arm.pose.bones[bone]
    pose.rotation_mode = "XYZ"
    local = arm.data.bones[bone].matrix_local.to_3x3().transposed() @ Vector(axis)
    index = max(range(3), key=lambda i: abs(local[i]))
    curve = pose.driver_add("rotation_euler", index)
    driver = curve.driver
    driver.type = "SCRIPTED"
    terms = []
    for var_name, arkit_name in variables.items():
        key = by_arkit.get(arkit_name)
        if key is None:
            continue
        var = driver.variables.new()
        var.name, var.type = var_name, "SINGLE_PROP"
        var.targets[0].id_type = "KEY"
        var.targets[0].id = keys
        var.targets[0].data_path = f'key_blocks["{bpy.utils.escape_identifier(key)}"].value'
        terms.append(var_name if var_name == "a" else f"-{var_name}")
    sign = 1.0 if local[index] > 0 else -1.0
    driver.expression = f"{sign * scale:.6f}*({''.join(terms) or '0'})"
