"""Operators of the Likeness panel: photo list, Reconstruct, Import Bundle, Cancel.

Fixed idnames scripts can rely on: ``likeness.reconstruct``, ``likeness.import_bundle``, ``likeness.cancel``.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import build, jobs, paths
from .errors import LikenessError, report_error
from .session import SESSION

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic"}


class LIKENESS_OT_add_photos(bpy.types.Operator, ImportHelper):
    """Add reference photos of the person (several photos from different angles help)"""

    bl_idname = "likeness.add_photos"
    bl_label = "Add Photos"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png;*.tif;*.tiff;*.webp;*.bmp;*.heic", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        names = [f.name for f in self.files if f.name] or [Path(self.filepath).name]
        added = _add_paths(context.scene.likeness, [Path(self.directory or Path(self.filepath).parent) / n
                                                    for n in names])
        self.report({"INFO"}, f"Added {added} photo{'s' * (added != 1)}")
        return {"FINISHED"}


class LIKENESS_OT_add_loaded_images(bpy.types.Operator):
    """Add the images already loaded in this .blend file (their files on disk) as reference photos"""

    bl_idname = "likeness.add_loaded_images"
    bl_label = "Add Loaded Images"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        files = [Path(bpy.path.abspath(image.filepath, library=image.library)) for image in bpy.data.images
                 if image.source == "FILE" and image.filepath and not image.packed_file]
        added = _add_paths(context.scene.likeness, [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS])
        self.report({"INFO"}, f"Added {added} photo{'s' * (added != 1)}")
        return {"FINISHED"}


def _add_paths(settings: bpy.types.PropertyGroup, files: list[Path]) -> int:
    """Append existing, not yet listed files to the photo list; returns how many were added."""
    known = {str(Path(bpy.path.abspath(p.filepath)).resolve()) for p in settings.photos}
    added = 0
    for file in files:
        resolved = str(file.resolve())
        if file.is_file() and resolved not in known:
            settings.photos.add().filepath = resolved
            known.add(resolved)
            added += 1
    return added


class LIKENESS_OT_remove_photo(bpy.types.Operator):
    """Remove the selected photo from the list"""

    bl_idname = "likeness.remove_photo"
    bl_label = "Remove Photo"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(default=-1, options={"SKIP_SAVE"}, description="Photo to remove (-1: the selected one)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.likeness
        index = self.index if self.index >= 0 else settings.active_photo
        if not 0 <= index < len(settings.photos):
            return {"CANCELLED"}
        settings.photos.remove(index)
        settings.active_photo = max(0, min(settings.active_photo, len(settings.photos) - 1))
        return {"FINISHED"}


class LIKENESS_OT_reconstruct(bpy.types.Operator):
    """Reconstruct a 3D head from the reference photos, in the background, then import it"""

    bl_idname = "likeness.reconstruct"
    bl_label = "Reconstruct Head"

    photos: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE"},
                               description="Photo paths to use instead of the panel's list, for scripts: "
                                           "photos=[{'name': '/path/a.jpg'}, ...]")
    output_dir: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"},
                               description="Folder for the bundle instead of the panel's setting")
    texture_size: IntProperty(default=0, min=0, max=8192, options={"SKIP_SAVE"},
                              description="Texture size in pixels instead of the panel's setting (0: panel)")
    model: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"},
                          description="Head model file (.npz) instead of the installed one")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.likeness
        paths_given = [p.name for p in self.photos] or [p.filepath for p in settings.photos]
        photos = [bpy.path.abspath(p) for p in paths_given if p]
        folder = paths.output_folder(self.output_dir or settings.output_dir)
        size = self.texture_size or int(settings.texture_size)
        try:
            model = bpy.path.abspath(self.model) if self.model else ("flame" if settings.smirk_flame else "")
            jobs.start_reconstruct(context.scene, photos, folder, size, model, settings.refine,
                                   "smirk" if settings.smirk_flame else settings.encoder, settings.lens_mm,
                                   settings.occlusion)
        except LikenessError as exc:
            return report_error(self, exc)
        self.report({"INFO"}, f"Reconstructing from {len(photos)} photo{'s' * (len(photos) != 1)}...")
        return {"FINISHED"}


class LIKENESS_OT_cancel(bpy.types.Operator):
    """Cancel the running reconstruction"""

    bl_idname = "likeness.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return SESSION.active("reconstruct") is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            cancelled = jobs.cancel_reconstruct()
        except LikenessError as exc:
            return report_error(self, exc)
        if not cancelled:
            self.report({"WARNING"}, "No reconstruction is running")
            return {"CANCELLED"}
        self.report({"INFO"}, "Cancelling the reconstruction...")
        return {"FINISHED"}


class LIKENESS_OT_import_bundle(bpy.types.Operator, ImportHelper):
    """Import a Likeness bundle folder (head with expressions, materials, photo cameras)"""

    bl_idname = "likeness.import_bundle"
    bl_label = "Import Likeness Bundle"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="manifest.json", options={"HIDDEN"})
    hair_cap: BoolProperty(name="Hair Cap", default=True,
                           description="Paint the hair colour the photos showed over the skin where they saw hair "
                                       "(scalp, temples). Off: bare skin; the material's 'Hair Cap' value turns it "
                                       "on later")
    hair_volume: FloatProperty(name="Hair Volume", default=0.0, min=0.0, max=0.05, soft_max=0.03, unit="LENGTH",
                               precision=3,
                               description="Lift the surface where the photos saw hair by up to this much, so the "
                                           "hair has a volume (0: none). A 'Likeness Hair Volume' modifier on the "
                                           "head; change its Strength or switch it off later")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            objects = build.import_bundle(self.filepath, context.scene, context.view_layer, hair_cap=self.hair_cap,
                                          hair_volume=self.hair_volume)
        except LikenessError as exc:
            return report_error(self, exc)
        warnings = objects[0].get("likeness_warnings", [])
        for warning in warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported '{objects[0].name}' and {len(objects) - 1} photo camera(s)")
        return {"FINISHED"}


def menu_import(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(LIKENESS_OT_import_bundle.bl_idname, text="Likeness Bundle (manifest.json)")


CLASSES = (
    LIKENESS_OT_add_photos,
    LIKENESS_OT_add_loaded_images,
    LIKENESS_OT_remove_photo,
    LIKENESS_OT_reconstruct,
    LIKENESS_OT_cancel,
    LIKENESS_OT_import_bundle,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
