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


CLASSES = (LIKENESS_UL_photos, LIKENESS_PT_main)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
