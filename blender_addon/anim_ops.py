"""Animator features in the UI: Animate from Video (the backend's ``track`` job), Apply Track, Live Link Face CSV
import/export, Add Rig, Rename Shape Keys, and the Animation panel.

Fixed idnames for scripts: ``likeness.animate_video``, ``likeness.apply_track``, ``likeness.import_livelink``,
``likeness.export_livelink``, ``likeness.add_rig``, ``likeness.rename_shape_keys``, ``likeness.cancel_track``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import animation, build, jobs, paths, rig, shape_names
from .errors import LikenessError, report_error
from .session import SESSION, Request

TARGETS = [("NEW_HEAD", "New Head", "Build a head from the video's face and animate it"),
           ("SELECTED", "Selected Objects", "Animate the selected meshes with ARKit-named shape keys")]


class LikenessAnimationSettings(bpy.types.PropertyGroup):
    """Per-scene settings of the Animation panel (``scene.likeness_animation``)."""

    video: StringProperty(name="Video", subtype="FILE_PATH", description="Video of one face to track")
    target: EnumProperty(name="Animate", items=TARGETS, default="NEW_HEAD")
    add_rig: BoolProperty(name="Add Rig", default=True,
                          description="Armature with head, neck, jaw and eye bones; the eyes turn with eyeLook*")


def start_track(scene: bpy.types.Scene, video: str, output_dir: Path, target: str = "NEW_HEAD",
                add_rig: bool = True, model: str = "", texture_size: int = 1024, encoder: bool = True) -> Request:
    """Send a ``track`` job for ``video``; its result animates a new head (textures of ``texture_size`` px)
    or the selected objects. ``encoder``: read the expression with the learned expression encoder (the default;
    the backend reads the landmarks alone where torch is not installed)."""
    if SESSION.active("track") is not None:
        raise LikenessError("A video is already being tracked.", "Wait for it to finish or press Cancel.")
    if not Path(video).is_file():
        raise LikenessError(f"Video not found: {video}", "Pick a video file in the Animation panel.")
    selected = [o.name for o in bpy.context.selected_objects if o.type == "MESH" and o.data.shape_keys]
    if target == "SELECTED" and not selected:
        raise LikenessError("No selected mesh has shape keys.", "Select meshes with ARKit-named shape keys.")
    paths.ensure_backend()
    output_dir = Path(output_dir).expanduser().resolve()
    output = jobs.unique_output(output_dir, jobs.job_name(video) + "_track")
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"video": str(Path(video).resolve()), "output": str(output), "head": target == "NEW_HEAD",
              "name": jobs.job_name(video), "model": model or None, "texture_size": int(texture_size),
              "encoder": bool(encoder)}
    request = SESSION.submit("track", params, {"scene": scene.name, "output": str(output), "target": target,
                                               "add_rig": add_rig, "selected": selected})
    jobs._show_progress(scene, 0.0, "Starting the backend...", is_error=False)
    jobs.ensure_timer()
    return request


def animate_from_track(folder: str | Path, scene: bpy.types.Scene, objects: list[bpy.types.Object] | None = None,
                       add_rig: bool = True) -> list[bpy.types.Object]:
    """Animate ``objects`` from a track folder, or import its head bundle and animate that; returns the
    animated objects followed by the video camera."""
    doc = animation.read_track(folder)
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    if objects is None:
        if not doc.get("head_bundle"):
            raise LikenessError("The track has no head bundle.", "Select meshes with ARKit shape keys instead.")
        imported = build.import_bundle(Path(doc["root"]) / doc["head_bundle"], scene, view_layer)
        for marker in [m for m in scene.timeline_markers if m.camera in imported]:
            scene.timeline_markers.remove(marker)  # the identity frames' cameras must not take over playback
        for cam in imported[1:]:
            cam.hide_viewport = cam.hide_render = True
        objects = imported[:1]
        if add_rig:
            rig.add_rig(objects[0], view_layer)
    result = animation.apply_track(doc, objects, scene)
    return [*objects, result["camera"]]


def _finish_track(request: Request, result: dict[str, Any]) -> None:
    scene = jobs._scene(request)
    context = request.context
    try:
        objects = None
        if context["target"] == "SELECTED":
            objects = [bpy.data.objects[n] for n in context["selected"] if n in bpy.data.objects]
        animated = animate_from_track(result.get("track", context["output"]), scene, objects, context["add_rig"])
    except LikenessError as exc:
        request.context["error"] = exc
        jobs._finish_error(request)
        return
    request.context["objects"] = animated
    lost = result.get("lost_frames") or 0
    note = f" ({lost} lost frame{'s' * (lost != 1)} bridged)" if lost else ""
    jobs._show_progress(scene, 1.0, f"Animated {result.get('frames', '?')} frames{note}", is_error=False)
    try:
        bpy.ops.ed.undo_push(message="Likeness Animate from Video")
    except RuntimeError:  # no window to record undo in (background mode)
        pass


def _selected_meshes(context: bpy.types.Context) -> list[bpy.types.Object]:
    return [o for o in context.selected_objects if o.type == "MESH" and o.data.shape_keys is not None]


class LIKENESS_OT_animate_video(bpy.types.Operator):
    """Track the face in a video in the background (ARKit weights, head motion, gaze), then animate a new head
or the selected objects at the video's frame rate, with a camera showing the video"""

    bl_idname = "likeness.animate_video"
    bl_label = "Animate from Video"

    video: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"}, description="Video instead of the panel's")
    output_dir: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"}, description="Folder for the track")
    model: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"}, description="Head model file (.npz)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.likeness_animation
        video = bpy.path.abspath(self.video or settings.video)
        folder = paths.output_folder(self.output_dir or context.scene.likeness.output_dir)
        try:
            start_track(context.scene, video, folder, settings.target, settings.add_rig, bpy.path.abspath(self.model),
                        encoder=context.scene.likeness.encoder)
        except LikenessError as exc:
            return report_error(self, exc)
        self.report({"INFO"}, f"Tracking {Path(video).name}...")
        return {"FINISHED"}


class LIKENESS_OT_cancel_track(bpy.types.Operator):
    """Cancel the running video tracking"""

    bl_idname = "likeness.cancel_track"
    bl_label = "Cancel Tracking"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return SESSION.active("track") is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        return {"FINISHED"} if jobs.cancel_reconstruct("track") else {"CANCELLED"}


class LIKENESS_OT_apply_track(bpy.types.Operator, ImportHelper):
    """Animate the selected objects' ARKit-named shape keys (any spelling) from a track (track.json)"""

    bl_idname = "likeness.apply_track"
    bl_label = "Apply Track"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="track.json", options={"HIDDEN"})
    head_motion: BoolProperty(name="Head Motion", default=True, description="Move the first selected object too")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            doc = animation.read_track(Path(self.filepath).parent)
            result = animation.apply_track(doc, _selected_meshes(context), context.scene, self.head_motion)
        except LikenessError as exc:
            return report_error(self, exc)
        self.report({"INFO"}, f"Animated {result['keys']} shape keys over {len(doc['frames'])} frames")
        return {"FINISHED"}


class LIKENESS_OT_import_livelink(bpy.types.Operator, ImportHelper):
    """Animate the selected objects' ARKit-named shape keys from a Live Link Face CSV"""

    bl_idname = "likeness.import_livelink"
    bl_label = "Import Live Link Face CSV"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            count = animation.apply_livelink(self.filepath, _selected_meshes(context), context.scene)
        except LikenessError as exc:
            return report_error(self, exc)
        self.report({"INFO"}, f"Animated {count} shape keys")
        return {"FINISHED"}


class LIKENESS_OT_export_livelink(bpy.types.Operator, ExportHelper):
    """Write the active object's shape-key animation (scene frame range) as a Live Link Face CSV"""

    bl_idname = "likeness.export_livelink"
    bl_label = "Export Live Link Face CSV"

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        if context.active_object is None:
            self.report({"ERROR"}, "Select a head with shape keys")
            return {"CANCELLED"}
        try:
            path = animation.export_livelink(context.active_object, self.filepath, context.scene)
        except LikenessError as exc:
            return report_error(self, exc)
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


class LIKENESS_OT_add_rig(bpy.types.Operator):
    """Add an armature (root, neck, head, jaw, eyes) to the active Likeness head; the eyes turn with eyeLook*"""

    bl_idname = "likeness.add_rig"
    bl_label = "Add Rig"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            arm = rig.add_rig(context.active_object, context.view_layer)
        except (LikenessError, AttributeError) as exc:
            return report_error(self, exc if isinstance(exc, LikenessError) else LikenessError("Select a Likeness head."))
        self.report({"INFO"}, f"Added '{arm.name}'")
        return {"FINISHED"}


class LIKENESS_OT_rename_shape_keys(bpy.types.Operator):
    """Rename the active Likeness head's expression keys to the naming chosen here"""

    bl_idname = "likeness.rename_shape_keys"
    bl_label = "Rename Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    style: EnumProperty(name="Naming", items=shape_names.STYLE_ITEMS, default="camel")

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object
        if obj is None or not obj.get("likeness_expression_names") or obj.data.shape_keys is None:
            self.report({"ERROR"}, "Select a head imported from a Likeness bundle")
            return {"CANCELLED"}
        shape_names.apply_naming(obj, self.style)
        return {"FINISHED"}


class LIKENESS_PT_animation(bpy.types.Panel):
    """Video tracking, tracks and Live Link Face CSVs onto ARKit shape keys, rig."""

    bl_idname = "LIKENESS_PT_animation"
    bl_label = "Animation"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Likeness"
    bl_parent_id = "LIKENESS_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.likeness_animation
        running = SESSION.active("track") is not None
        layout.prop(settings, "video")
        row = layout.row(align=True)
        row.prop(settings, "target", expand=True)
        if settings.target == "NEW_HEAD":
            layout.prop(settings, "add_rig")
        layout.prop(context.scene.likeness, "encoder")  # the same switch as for photos
        row = layout.row()
        row.enabled = not running and bool(settings.video)
        row.operator(LIKENESS_OT_animate_video.bl_idname, icon="SEQUENCE")
        if running:
            layout.operator(LIKENESS_OT_cancel_track.bl_idname, icon="CANCEL")
        column = layout.column(align=True)
        column.operator(LIKENESS_OT_apply_track.bl_idname, icon="ANIM")
        column.operator(LIKENESS_OT_import_livelink.bl_idname, icon="IMPORT")
        column.operator(LIKENESS_OT_export_livelink.bl_idname, icon="EXPORT")
        column.operator(LIKENESS_OT_add_rig.bl_idname, icon="ARMATURE_DATA")
        column.operator(LIKENESS_OT_rename_shape_keys.bl_idname, icon="SORTALPHA")
        layout.label(text="No tongueOut: ICT has no separate tongue to move", icon="INFO")


CLASSES = (LikenessAnimationSettings, LIKENESS_OT_animate_video, LIKENESS_OT_cancel_track, LIKENESS_OT_apply_track,
           LIKENESS_OT_import_livelink, LIKENESS_OT_export_livelink, LIKENESS_OT_add_rig,
           LIKENESS_OT_rename_shape_keys, LIKENESS_PT_animation)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.likeness_animation = PointerProperty(type=LikenessAnimationSettings)
    jobs.FINISHERS["track"] = _finish_track


def unregister() -> None:
    jobs.FINISHERS.pop("track", None)
    del bpy.types.Scene.likeness_animation
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
