"""Batch Import: a folder of bundles (``likeness batch`` output) → one collection per head, laid out in a grid,
and optionally a contact sheet rendered with Cycles.

Fixed idname for scripts: ``likeness.batch_import``; from Python, :func:`import_folder` (also ``api.batch_import``).
Heads face −Y; the grid runs along +X (columns) and −Z (rows). Each head's photo cameras move with it, so they
still frame their head. A bundle that does not validate is skipped and named in the result; the others import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty
from mathutils import Vector

from . import build
from .errors import BundleError, LikenessError, report_error

SHEET_CAMERA = "Likeness Contact Sheet"
SHEET_LIGHT = "Likeness Contact Sheet Light"


@dataclass
class BatchResult:
    heads: list[bpy.types.Object] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (bundle folder, why)
    camera: bpy.types.Object | None = None  # the contact sheet's camera, when one was made
    sheet: str | None = None  # the rendered contact sheet's path


def find_bundles(folder: str | Path) -> list[Path]:
    """Bundle folders (with a manifest.json) in ``folder``: its sub-folders, and a track folder's ``head``;
    hidden folders (half-written outputs) are left out. Sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder.", "Pick the folder `likeness batch` wrote (-o DIR).")
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        for candidate in (entry, entry / "head"):
            if (candidate / "manifest.json").is_file():
                found.append(candidate)
                break
    return found


def import_folder(folder: str | Path, scene: bpy.types.Scene, spacing: float = 0.4, columns: int = 0,
                  contact_sheet: str | Path | None = None, cell: int = 256, samples: int = 16) -> BatchResult:
    """Import every bundle in ``folder`` into ``scene`` on a grid (``columns`` 0: about square) ``spacing``
    metres apart; with ``contact_sheet`` also render the grid there (Cycles on the CPU, ``cell`` px per head)."""
    bundles = find_bundles(folder)
    if not bundles:
        raise BundleError(f"No Likeness bundles in {folder}.", "Pick the folder `likeness batch` wrote (-o DIR).")
    result = BatchResult()
    columns = columns or math.ceil(math.sqrt(len(bundles)))
    for path in bundles:
        try:
            objects = build.import_bundle(path, scene)
        except LikenessError as exc:
            result.skipped.append((str(path), exc.message))
            continue
        index = len(result.heads)
        offset = Vector(((index % columns) * spacing, 0.0, -(index // columns) * spacing))
        for obj in objects:
            obj.location += offset
        result.heads.append(objects[0])
    if result.heads:
        result.camera = _sheet_camera(scene, result.heads, spacing, columns)
        scene.camera = result.camera
        rows = math.ceil(len(result.heads) / columns)
        cols = min(columns, len(result.heads))
        scene.render.resolution_x, scene.render.resolution_y = cell * cols, cell * rows
        if contact_sheet:
            result.sheet = render_sheet(scene, contact_sheet, samples)
    return result


def _sheet_camera(scene: bpy.types.Scene, heads: list[bpy.types.Object], spacing: float,
                  columns: int) -> bpy.types.Object:
    """An orthographic camera in front of the grid that frames every head, and a soft key light."""
    rows = math.ceil(len(heads) / columns)
    cols = min(columns, len(heads))
    center = Vector(((cols - 1) * spacing / 2, 0.0, -(rows - 1) * spacing / 2))
    center.z += _head_center_z(heads[0])
    data = bpy.data.cameras.get(SHEET_CAMERA) or bpy.data.cameras.new(SHEET_CAMERA)
    data.type = "ORTHO"
    data.ortho_scale = max(cols, rows) * spacing
    data.sensor_fit = "AUTO"
    camera = bpy.data.objects.get(SHEET_CAMERA) or bpy.data.objects.new(SHEET_CAMERA, data)
    if camera.name not in scene.collection.objects:
        scene.collection.objects.link(camera)
    camera.location = center + Vector((0.0, -3.0, 0.0))
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)  # looking along +Y at the faces
    light_data = bpy.data.lights.get(SHEET_LIGHT) or bpy.data.lights.new(SHEET_LIGHT, "SUN")
    light_data.energy = 3.0
    light = bpy.data.objects.get(SHEET_LIGHT) or bpy.data.objects.new(SHEET_LIGHT, light_data)
    if light.name not in scene.collection.objects:
        scene.collection.objects.link(light)
    light.rotation_euler = (math.radians(70), 0.0, math.radians(-25))
    return camera


def _head_center_z(head: bpy.types.Object) -> float:
    """Height of the middle of the head's bounding box above its origin (world units)."""
    zs = [(head.matrix_world @ Vector(corner)).z for corner in head.bound_box]
    return (max(zs) + min(zs)) / 2 - head.matrix_world.translation.z


def render_sheet(scene: bpy.types.Scene, path: str | Path, samples: int = 16) -> str:
    """Render ``scene`` from its camera to ``path`` (PNG) with Cycles on the CPU; returns the path."""
    path = str(Path(bpy.path.abspath(str(path))).resolve())
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    render.resolution_percentage = 100
    render.image_settings.file_format = "PNG"
    render.filepath = path
    bpy.ops.render.render(write_still=True, scene=scene.name)
    return path


class LIKENESS_OT_batch_import(bpy.types.Operator):
    """Import every Likeness bundle in a folder (the output of `likeness batch`): one collection per head, in a
    grid, optionally rendering a contact sheet"""

    bl_idname = "likeness.batch_import"
    bl_label = "Batch Import"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(subtype="DIR_PATH", description="Folder of bundles")
    spacing: FloatProperty(default=0.4, min=0.05, max=10.0, unit="LENGTH", description="Distance between heads")
    columns: IntProperty(default=0, min=0, max=1000, description="Heads per row (0: about square)")
    contact_sheet: BoolProperty(default=False, description="Render the grid to contact_sheet.png in the folder")
    contact_sheet_path: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"},
                                       description="Where to render the contact sheet (default: in the folder)")
    cell: IntProperty(default=256, min=32, max=4096, description="Contact sheet pixels per head")
    samples: IntProperty(default=16, min=1, max=4096, description="Cycles samples of the contact sheet")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        folder = Path(bpy.path.abspath(self.directory))
        sheet = None
        if self.contact_sheet or self.contact_sheet_path:
            sheet = bpy.path.abspath(self.contact_sheet_path) if self.contact_sheet_path else \
                folder / "contact_sheet.png"
        try:
            result = import_folder(folder, context.scene, self.spacing, self.columns, sheet, self.cell, self.samples)
        except LikenessError as exc:
            return report_error(self, exc)
        for path, why in result.skipped:
            self.report({"WARNING"}, f"Skipped {Path(path).name}: {why}")
        done = f"Imported {len(result.heads)} head{'s' * (len(result.heads) != 1)}"
        self.report({"INFO"}, done + (f"; contact sheet: {result.sheet}" if result.sheet else ""))
        return {"FINISHED"} if result.heads else {"CANCELLED"}


def register() -> None:
    bpy.utils.register_class(LIKENESS_OT_batch_import)


def unregister() -> None:
    bpy.utils.unregister_class(LIKENESS_OT_batch_import)
