"""Edit with Text: the backend's ``edit`` and ``create`` jobs (text edits, text → head, text relighting).

Flow in the panel: type a prompt, tick what may change, press **Edit with Text** (or **New Head from Text**);
the backend writes a new bundle and its before/after preview, shown in the panel; **Apply as New Head** imports
it beside the old head (the old one is never changed). Scripts use ``api.edit`` / ``api.create_head``.

A light edit can also just light the scene: **Use Light as World** builds a world from the edited light (as
Match Photo Lighting does) without importing another head.

Fixed idnames: ``likeness.edit_with_text``, ``likeness.create_from_text``, ``likeness.apply_edit``,
``likeness.use_edit_light``, ``likeness.cancel_edit``, ``likeness.edit_model_info``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import build, jobs, paths, world
from .errors import LikenessError, report_error
from .session import SESSION, Request

REGIONS = [("NONE", "Whole Head", "Anything may change"), ("face", "Face", ""), ("skin", "Skin", ""),
           ("lips", "Lips", ""), ("eyes", "Eyes", ""), ("nose", "Nose", ""), ("brows", "Brows", ""),
           ("scalp", "Scalp", "")]
PREVIEW_IMAGE = "Likeness Edit Preview"
#: metres between the old head and the new one placed beside it (+X in Blender)
BESIDE = 0.35
KINDS = ("edit", "create")


class LikenessEditSettings(bpy.types.PropertyGroup):
    """Per-scene settings of the Edit with Text panel (``scene.likeness_edit``)."""

    prompt: StringProperty(name="Prompt", description="What the head should become, e.g. 'older, with a grey beard' "
                                                      "or 'lit by a warm sunset from the left'")
    negative_prompt: StringProperty(name="Avoid", description="What to steer away from (negative prompt)")
    albedo: BoolProperty(name="Skin Colour", default=True, description="The albedo texture may change")
    shape: BoolProperty(name="Shape", default=False, description="The head's shape (identity) may change")
    expression: BoolProperty(name="Expression", default=False, description="The 53 expression weights may change")
    light: BoolProperty(name="Light", default=False, description="The photo light may change (Match Photo Lighting "
                                                                 "shows it); light words like 'warm sunset from the "
                                                                 "left' set it directly")
    strength: FloatProperty(name="Strength", default=0.5, min=0.05, max=1.0, subtype="FACTOR",
                            description="How far the edit may move from the photo")
    steps: IntProperty(name="Steps", default=200, min=0, max=5000,
                       description="Score-distillation steps (0: light words only, no diffusion model needed)")
    seed: IntProperty(name="Seed", default=0, min=0)
    region: EnumProperty(name="Only", items=REGIONS, default="NONE", description="Leave everything outside unchanged")
    result_bundle: StringProperty(name="Result", subtype="DIR_PATH",
                                  description="The last edit's bundle, not yet applied")
    source_object: StringProperty(name="Source", description="The head the last edit started from")
    model_info: StringProperty(name="Model", description="The Stable Diffusion model the backend uses, and its licence")


def _what(settings) -> list[str]:
    return [w for w in ("albedo", "shape", "expression", "light") if getattr(settings, w)]


def start_edit(scene: bpy.types.Scene, prompt: str, source: bpy.types.Object | None, output_dir: Path,
               what: list[str], apply: bool = False, **options: Any) -> Request:
    """Send an ``edit`` job for ``source`` (a Likeness head) or, with ``source`` None, a ``create`` job;
    ``options`` go to the backend as they are (strength, steps, seed, negative_prompt, region, size, device,
    sd_model, model). With ``apply`` the result is imported beside the old head when it arrives."""
    kind = "create" if source is None else "edit"
    if any(SESSION.active(k) is not None for k in KINDS):
        raise LikenessError("A text edit is already running.", "Wait for it to finish or press Cancel.")
    if not prompt.strip():
        raise LikenessError("The prompt is empty.", "Describe the change, e.g. 'older, with a grey beard'.")
    bundle = source.get(build.BUNDLE_PROPERTY) if source is not None else None
    if source is not None and not bundle:
        raise LikenessError("The selected object is not a Likeness head.", "Select a head imported from a bundle.")
    paths.ensure_backend()
    output_dir = Path(output_dir).expanduser().resolve()
    name = jobs.job_name(Path(bundle).name + "_edit" if bundle else prompt)
    output = jobs.unique_output(output_dir, name)
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"prompt": prompt, "output": str(output), "what": what, "name": name,
              **{k: v for k, v in options.items() if v is not None}}
    if bundle:
        params["bundle"] = str(bundle)
    request = SESSION.submit(kind, params, {"scene": scene.name, "output": str(output), "apply": apply,
                                            "source": source.name if source is not None else ""})
    jobs._show_progress(scene, 0.0, "Starting the backend...", is_error=False)
    jobs.ensure_timer()
    return request


def apply_bundle(scene: bpy.types.Scene, bundle: str | Path, source_name: str = "") -> list[bpy.types.Object]:
    """Import an edited bundle beside the head it came from (``source_name``): [head, cameras...]."""
    view_layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    source = bpy.data.objects.get(source_name) if source_name else None
    volume = source.modifiers.get(build.HAIR_VOLUME_MODIFIER) if source is not None else None
    objects = build.import_bundle(bundle, scene, view_layer,  # the edited head keeps the source's hair volume
                                  hair_volume=volume.strength if volume is not None else 0.0)
    if source is not None:
        offset = source.matrix_world.translation.x + BESIDE - objects[0].location.x
        for obj in objects:
            if obj.parent is None:
                obj.location.x += offset
    return objects


def _finish(request: Request, result: dict[str, Any]) -> None:
    scene = jobs._scene(request)
    bundle = str(result.get("bundle", request.context["output"]))
    settings = scene.likeness_edit
    model = (result.get("edit") or {}).get("model") or {}
    if model:
        settings.model_info = f"{Path(model.get('path', '')).name}: {model.get('license', '?')}"
    preview = Path(bundle) / "preview.png"
    if preview.is_file():
        old = bpy.data.images.get(PREVIEW_IMAGE)
        if old is not None:
            bpy.data.images.remove(old)
        image = bpy.data.images.load(str(preview))
        image.name = PREVIEW_IMAGE
    if not request.context.get("apply"):
        settings.result_bundle, settings.source_object = bundle, request.context.get("source", "")
        jobs._show_progress(scene, 1.0, "Edit ready: look at the preview, then Apply as New Head", is_error=False)
        return
    try:
        request.context["objects"] = apply_bundle(scene, bundle, request.context.get("source", ""))
    except LikenessError as exc:
        request.context["error"] = exc
        jobs._finish_error(request)
        return
    jobs._show_progress(scene, 1.0, f"Imported '{request.context['objects'][0].name}'", is_error=False)


def _finish_models(request: Request, result: dict[str, Any]) -> None:
    scene = jobs._scene(request)
    entry = (result.get("models") or {}).get("sd") or {}
    scene.likeness_edit.model_info = (f"{entry.get('path', '?')} ({entry.get('license', '?')}"
                                      f"{', non-commercial' if entry.get('non_commercial') else ''})"
                                      if entry.get("installed") else "No Stable Diffusion model installed "
                                      "(`likeness models install sd --from FOLDER`)")


class LIKENESS_OT_edit_with_text(bpy.types.Operator):
    """Edit the selected Likeness head by the prompt: a new bundle and a before/after preview (the head is kept)"""

    bl_idname = "likeness.edit_with_text"
    bl_label = "Edit with Text"

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.likeness_edit
        try:
            folder = paths.output_folder(context.scene.likeness.output_dir)
            start_edit(context.scene, s.prompt, context.active_object, folder, _what(s), strength=s.strength,
                       steps=s.steps, seed=s.seed, negative_prompt=s.negative_prompt,
                       region=None if s.region == "NONE" else s.region)
        except LikenessError as exc:
            return report_error(self, exc)
        return {"FINISHED"}


class LIKENESS_OT_create_from_text(bpy.types.Operator):
    """A new head from the prompt alone, starting from the average head"""

    bl_idname = "likeness.create_from_text"
    bl_label = "New Head from Text"

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.likeness_edit
        try:
            start_edit(context.scene, s.prompt, None, paths.output_folder(context.scene.likeness.output_dir),
                       _what(s) or ["albedo", "shape"], apply=True, strength=s.strength, steps=s.steps, seed=s.seed,
                       negative_prompt=s.negative_prompt)
        except LikenessError as exc:
            return report_error(self, exc)
        return {"FINISHED"}


class LIKENESS_OT_apply_edit(bpy.types.Operator):
    """Import the last edit as a new head beside the old one"""

    bl_idname = "likeness.apply_edit"
    bl_label = "Apply as New Head"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(context.scene.likeness_edit.result_bundle)

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.likeness_edit
        try:
            objects = apply_bundle(context.scene, s.result_bundle, s.source_object)
        except LikenessError as exc:
            return report_error(self, exc)
        s.result_bundle = ""
        self.report({"INFO"}, f"Imported '{objects[0].name}'")
        return {"FINISHED"}


def edited_light(bundle: str | Path) -> tuple[Any, str]:
    """The first photo's light (9,3) of an edited bundle and the edit's prompt; :class:`LikenessError` if none."""
    import json

    import numpy as np

    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
        light = np.asarray(manifest["photos"][0]["light"]["sh"], np.float64)
        prompt = str((manifest.get("edit") or {}).get("prompt", "edited"))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise LikenessError("The edited bundle has no light to use.",
                            "Edit a head reconstructed from a photo.") from exc
    if light.shape != (9, 3) or not np.isfinite(light).all():
        raise LikenessError("The edited bundle's light is malformed.", "Run the edit again.")
    return light, prompt


class LIKENESS_OT_use_edit_light(bpy.types.Operator):
    """Light the scene with the last edit's light: a new world built from it (no new head)"""

    bl_idname = "likeness.use_edit_light"
    bl_label = "Use Light as World"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(context.scene.likeness_edit.result_bundle)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            light, prompt = edited_light(context.scene.likeness_edit.result_bundle)
        except LikenessError as exc:
            return report_error(self, exc)
        context.scene.world = world.light_world(light, f"Light: {prompt[:40]}")
        context.scene.view_settings.view_transform = "Standard"
        return {"FINISHED"}


class LIKENESS_OT_cancel_edit(bpy.types.Operator):
    """Cancel the running text edit"""

    bl_idname = "likeness.cancel_edit"
    bl_label = "Cancel Edit"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not any(jobs.cancel_reconstruct(k) for k in KINDS):
            self.report({"WARNING"}, "No text edit is running")
            return {"CANCELLED"}
        return {"FINISHED"}


class LIKENESS_OT_edit_model_info(bpy.types.Operator):
    """Ask the backend which Stable Diffusion model it uses and under which licence"""

    bl_idname = "likeness.edit_model_info"
    bl_label = "Which Model?"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            paths.ensure_backend()
            SESSION.submit("models", None, {"scene": context.scene.name})
            jobs.ensure_timer()
        except LikenessError as exc:
            return report_error(self, exc)
        return {"FINISHED"}


class LIKENESS_PT_edit(bpy.types.Panel):
    """Text edits, text → head, text relighting (needs a Stable Diffusion model in the backend)."""

    bl_idname = "LIKENESS_PT_edit"
    bl_label = "Edit with Text"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Likeness"
    bl_parent_id = "LIKENESS_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout, s = self.layout, context.scene.likeness_edit
        running = any(SESSION.active(k) is not None for k in KINDS)
        layout.prop(s, "prompt")
        layout.prop(s, "negative_prompt")
        column = layout.column(align=True)
        for name in ("albedo", "shape", "expression", "light"):
            column.prop(s, name)
        layout.prop(s, "region")
        layout.prop(s, "strength", slider=True)
        row = layout.row(align=True)
        row.prop(s, "steps")
        row.prop(s, "seed")
        obj = context.active_object
        row = layout.row(align=True)
        row.enabled = not running and bool(s.prompt.strip())
        edit = row.row()
        edit.enabled = obj is not None and bool(obj.get(build.BUNDLE_PROPERTY))
        edit.operator(LIKENESS_OT_edit_with_text.bl_idname, icon="GREASEPENCIL")
        row.operator(LIKENESS_OT_create_from_text.bl_idname, icon="USER")
        if running:
            layout.operator(LIKENESS_OT_cancel_edit.bl_idname, icon="CANCEL")
        image = bpy.data.images.get(PREVIEW_IMAGE)
        if image is not None and image.preview is not None:
            layout.label(text="Before (top) and after (bottom)")
            layout.template_icon(icon_value=image.preview.icon_id, scale=10.0)
        if s.result_bundle:
            row = layout.row(align=True)
            row.operator(LIKENESS_OT_apply_edit.bl_idname, icon="DUPLICATE")
            if s.light:
                row.operator(LIKENESS_OT_use_edit_light.bl_idname, icon="WORLD")
        row = layout.row()
        row.label(text=f"Model: {s.model_info or 'ask the backend'}", icon="INFO")
        row.operator(LIKENESS_OT_edit_model_info.bl_idname, text="", icon="QUESTION")


CLASSES = (LikenessEditSettings, LIKENESS_OT_edit_with_text, LIKENESS_OT_create_from_text, LIKENESS_OT_apply_edit,
           LIKENESS_OT_use_edit_light, LIKENESS_OT_cancel_edit, LIKENESS_OT_edit_model_info, LIKENESS_PT_edit)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.likeness_edit = PointerProperty(type=LikenessEditSettings)
    jobs.FINISHERS.update(edit=_finish, create=_finish, models=_finish_models)


def unregister() -> None:
    for kind in ("edit", "create", "models"):
        jobs.FINISHERS.pop(kind, None)
    del bpy.types.Scene.likeness_edit
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
