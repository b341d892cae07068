""""Match photo lighting": a world whose environment relights the head like the photo's estimated light.

The world shader evaluates :func:`~.sh_light.radiance_polynomial` of the view direction with math nodes, so the
same light works in Cycles and EEVEE. The scene's view transform becomes *Standard* so renders compare with the
photo pixel for pixel (the estimate is in the photo's display-referred exposure).
"""

from __future__ import annotations

import bpy
import numpy as np

from . import sh_light
from .errors import BundleError, report_error

#: Custom property of a photo camera: its photo's light, 27 numbers (9 SH coefficients × RGB, head frame).
LIGHT_PROPERTY = "likeness_light"


def photo_light(camera: bpy.types.Object) -> np.ndarray:
    """The (9,3) SH light stored on a Likeness photo camera; :class:`BundleError` if it has none."""
    values = camera.get(LIGHT_PROPERTY) if camera is not None else None
    if values is None or len(values) != 27:
        raise BundleError("This camera has no estimated photo light.",
                          "Pick a photo camera of a head imported from a Likeness bundle (version 0.2 or later).")
    return np.asarray(list(values), np.float64).reshape(9, 3)


def light_world(light: np.ndarray, name: str) -> bpy.types.World:
    """A new world lit by the SH light (9,3) (head frame, as in the bundle)."""
    poly = sh_light.radiance_polynomial(light)
    world = bpy.data.worlds.new(name)
    if world.node_tree is None:  # Blender < 5.0 creates worlds without nodes
        world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    coords = nodes.new("ShaderNodeTexCoord")
    unit = nodes.new("ShaderNodeVectorMath")
    unit.operation = "NORMALIZE"
    links.new(coords.outputs["Generated"], unit.inputs[0])
    xyz = nodes.new("ShaderNodeSeparateXYZ")
    links.new(unit.outputs["Vector"], xyz.inputs[0])
    terms = {"x": xyz.outputs["X"], "y": xyz.outputs["Y"], "z": xyz.outputs["Z"]}
    for pair in ("xx", "yy", "zz", "xy", "yz", "zx"):
        product = _math(nodes, "MULTIPLY")
        links.new(terms[pair[0]], product.inputs[0])
        links.new(terms[pair[1]], product.inputs[1])
        terms[pair] = product.outputs[0]
    combine = nodes.new("ShaderNodeCombineColor")
    for channel, socket in enumerate(("Red", "Green", "Blue")):
        total = None
        for monomial, coeff in zip(sh_light.MONOMIALS[1:], poly[1:, channel]):
            step = _math(nodes, "MULTIPLY_ADD")
            links.new(terms[monomial], step.inputs[0])
            step.inputs[1].default_value = float(coeff)
            if total is None:
                step.inputs[2].default_value = float(poly[0, channel])
            else:
                links.new(total, step.inputs[2])
            total = step.outputs[0]
        positive = _math(nodes, "MAXIMUM")
        links.new(total, positive.inputs[0])
        positive.inputs[1].default_value = 0.0
        links.new(positive.outputs[0], combine.inputs[socket])
    background = nodes.new("ShaderNodeBackground")
    links.new(combine.outputs["Color"], background.inputs["Color"])
    background.inputs["Strength"].default_value = 1.0
    output = nodes.new("ShaderNodeOutputWorld")
    links.new(background.outputs["Background"], output.inputs["Surface"])
    for i, node in enumerate(nodes):
        node.location = (200 * (i // 12), -120 * (i % 12))
    return world


def _math(nodes: bpy.types.Nodes, operation: str) -> bpy.types.Node:
    node = nodes.new("ShaderNodeMath")
    node.operation = operation
    return node


def match_photo_lighting(camera: bpy.types.Object, scene: bpy.types.Scene) -> bpy.types.World:
    """Light ``scene`` like the photo of ``camera``: a new world from its light, Standard view transform."""
    world = light_world(photo_light(camera), f"{camera.name} light")
    scene.world = world
    scene.view_settings.view_transform = "Standard"
    scene.camera = camera
    return world


class LIKENESS_OT_match_photo_lighting(bpy.types.Operator):
    """Light the scene like the active (or scene) photo camera's photo: a world built from its estimated light"""

    bl_idname = "likeness.match_photo_lighting"
    bl_label = "Match Photo Lighting"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _camera(context) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            world = match_photo_lighting(_camera(context), context.scene)
        except BundleError as error:
            return report_error(self, error)
        self.report({"INFO"}, f"World '{world.name}' lights the scene like the photo")
        return {"FINISHED"}


def _camera(context: bpy.types.Context) -> bpy.types.Object | None:
    for obj in (context.active_object, context.scene.camera):
        if obj is not None and obj.type == "CAMERA" and LIGHT_PROPERTY in obj:
            return obj
    return None


def register() -> None:
    bpy.utils.register_class(LIKENESS_OT_match_photo_lighting)


def unregister() -> None:
    bpy.utils.unregister_class(LIKENESS_OT_match_photo_lighting)
