"""The 'Likeness' tab of the 3D viewport's sidebar (N panel)."""

from __future__ import annotations

from pathlib import Path

import bpy

from .session import SESSION


class LIKENESS_UL_photos(bpy.types.UIList):
    """Reference photo list: file name, full path in the tooltip."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        exists = Path(bpy.path.abspath(item.filepath)).is_file()
        layout.label(text=Path(item.filepath).name or "(empty)", icon="IMAGE_DATA" if exists else "ERROR")


class LIKENESS_PT_main(bpy.types.Panel):
    bl_idname = "LIKENESS_PT_main"
    bl_label = "Likeness"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Likeness"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.likeness
        running = SESSION.active("reconstruct") is not None

        layout.label(text="Reference Photos")
        row = layout.row()
        row.template_list("LIKENESS_UL_photos", "", settings, "photos", settings, "active_photo", rows=3)
        column = row.column(align=True)
        column.operator("likeness.add_photos", text="", icon="ADD")
        column.operator("likeness.remove_photo", text="", icon="REMOVE")
        column.operator("likeness.add_loaded_images", text="", icon="IMAGE_REFERENCE")

        layout.prop(settings, "output_dir")
        layout.prop(settings, "texture_size")
        layout.prop(settings, "refine")
        layout.prop(settings, "lens_mm")
        layout.prop(settings, "occlusion")
        layout.prop(settings, "hair_volume")
        layout.prop(settings, "encoder")
        layout.prop(settings, "smirk_flame")

        row = layout.row(align=True)
        row.scale_y = 1.4
        row.enabled = not running and len(settings.photos) > 0
        row.operator("likeness.reconstruct", icon="USER")
        if running:
            layout.operator("likeness.cancel", icon="CANCEL")
        if running or settings.status:
            layout.prop(settings, "progress", text="Progress" if running else "Last Job", slider=True)
            status = layout.row()
            status.alert = settings.status_is_error
            status.label(text=settings.status, icon="ERROR" if settings.status_is_error else "INFO")
        layout.separator()
        layout.operator("likeness.import_bundle", icon="IMPORT")
        layout.operator("likeness.batch_import", icon="OUTLINER_COLLECTION")
        layout.operator("likeness.match_photo_lighting", icon="LIGHT_SUN")
        head = context.active_object
        if head is not None and head.get("likeness_non_commercial"):  # FLAME, SMIRK: the user's own, non-commercial
            box = layout.box()
            box.alert = True
            box.label(text=f"{head.get('likeness_head_model', '').upper()} head: non-commercial, supplied by you",
                      icon="ERROR")
            box.label(text=head.get("likeness_license", ""))


class LIKENESS_PT_fit(bpy.types.Panel):
    """How well each photo of the selected head was fitted: confidence and warnings."""

    bl_idname = "LIKENESS_PT_fit"
    bl_label = "Fit Quality"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Likeness"
    bl_parent_id = "LIKENESS_PT_main"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(photo_cameras(context.active_object))

    def draw(self, context: bpy.types.Context) -> None:
        for cam in photo_cameras(context.active_object):
            box = self.layout.box()
            confidence = cam.get("likeness_confidence")
            text = cam.name if confidence is None else f"{cam.name}: confidence {confidence:.0%}"
            low = confidence is not None and confidence < LOW_CONFIDENCE
            box.label(text=text, icon="ERROR" if low or cam.get("likeness_warnings") else "CHECKMARK")
            for warning in cam.get("likeness_warnings", []):
                box.label(text=warning, icon="DOT")


#: Below this confidence a photo's fit is flagged in the panel.
LOW_CONFIDENCE = 0.5


def photo_cameras(obj: bpy.types.Object | None) -> list[bpy.types.Object]:
    """The photo cameras imported with the same bundle as ``obj`` (a Likeness head or one of its cameras)."""
    bundle = obj.get("likeness_bundle") if obj is not None else None
    if not bundle:
        return []
    cams = [o for o in bpy.data.objects if o.type == "CAMERA" and o.get("likeness_bundle") == bundle]
    return sorted(cams, key=lambda o: o.get("likeness_photo_index", 0))


CLASSES = (LIKENESS_UL_photos, LIKENESS_PT_main, LIKENESS_PT_fit)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
