"""Scene settings of the Likeness panel: photos, output folder, texture size, job progress."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty


class LikenessPhoto(bpy.types.PropertyGroup):
    """One reference photo (a file path)."""

    filepath: StringProperty(name="Photo", subtype="FILE_PATH", description="Reference photo of the person")


class LikenessSettings(bpy.types.PropertyGroup):
    """Per-scene settings of the Likeness panel (``scene.likeness``)."""

    photos: CollectionProperty(type=LikenessPhoto, name="Photos")
    active_photo: IntProperty(name="Active Photo", default=0)
    output_dir: StringProperty(
        name="Output Folder", subtype="DIR_PATH", default="//likeness/",
        description="Folder receiving one bundle folder per reconstruction ('//' = next to the .blend file)",
    )
    texture_size: EnumProperty(
        name="Texture Size", default="2048",
        items=[("512", "512 px", ""), ("1024", "1024 px", ""), ("2048", "2048 px", ""), ("4096", "4096 px", "")],
        description="Width and height of the skin textures, in pixels",
    )
    refine: BoolProperty(
        name="Refine Against Photos", default=False,
        description="After the landmark fit, match the head's lip edges to each photo (up to about 1 s more "
                    "per photo)",
    )
    lens_mm: FloatProperty(
        name="Lens Without EXIF", default=0.0, min=0.0, max=1200.0, soft_max=300.0, precision=0, unit="CAMERA",
        description="The lens of photos whose files do not say it (full-frame equivalent; 0 = 50 mm). A portrait "
                    "taken from a few metres: 85 mm or more; a phone's main camera: 26 mm. The head's proportions "
                    "follow it",
    )
    occlusion: BoolProperty(
        name="Remove Occlusion From Skin", default=False,
        description="Also divide the head's own shadowing (eye sockets, the sides of the nose, creases) out of the "
                    "skin texture, as Blender adds it back when it renders: truer under new lights, flatter under "
                    "even light",
    )
    hair_volume: FloatProperty(
        name="Hair Volume", default=0.0, min=0.0, max=0.05, soft_max=0.03, unit="LENGTH", precision=3,
        description="Lift the imported head's surface where the photos saw hair by up to this much (0: none); "
                    "a 'Likeness Hair Volume' modifier to change or switch off later",
    )
    encoder: BoolProperty(
        name="Learned Expression", default=True,
        description="Read the expression of photos and videos with the learned expression encoder (needs torch in "
                    "the backend, which Set up backend installs; without torch the landmarks alone are read). "
                    "Better on synthetic faces, and no worse on the real test photos",
    )
    smirk_flame: BoolProperty(
        name="SMIRK + FLAME (your files, non-commercial)", default=False,
        description="Make a FLAME head from SMIRK's reading, with the FLAME model and SMIRK weights you installed in "
                    "the backend (likeness models install flame|smirk --from PATH; docs/flame_smirk.md). "
                    "FLAME's licence is non-commercial",
    )
    progress: FloatProperty(name="Progress", subtype="FACTOR", min=0.0, max=1.0, default=0.0,
                            description="Progress of the running reconstruction")
    status: StringProperty(name="Status", default="", description="What the backend is doing, or the last error")
    status_is_error: BoolProperty(name="Status Is Error", default=False)


CLASSES = (LikenessPhoto, LikenessSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.likeness = bpy.props.PointerProperty(type=LikenessSettings)


def unregister() -> None:
    del bpy.types.Scene.likeness
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
