"""Example: a scene of many heads with different expressions, rendered — from a folder of Likeness bundles.

Make the bundles first, e.g. ``likeness batch photos/ -o out/people --texture-size 1024``, then either

    blender -b -P examples/batch_scene.py -- out/people out/people_scene.png       # Blender with the add-on
    .venv/bin/python examples/batch_scene.py out/people out/people_scene.png       # the bpy module from PyPI

(the second installs the add-on from this checkout into a throw-away Blender user folder first). Each head gets
the next expression of :data:`EXPRESSIONS` (shape-key weights; names in any spelling the add-on's naming
preference uses), the grid gets an orthographic camera and a key light (``api.batch_import``), and Cycles renders
it on the CPU. ``build_scene`` is the part to copy into your own scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: One expression per head, in turn: ARKit-style shape-key weights (ICT names; other spellings match too).
EXPRESSIONS = [
    {},  # neutral
    {"mouthSmile_L": 0.9, "mouthSmile_R": 0.9, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
    {"jawOpen": 0.7, "browInnerUp": 0.6, "eyeWide_L": 0.5, "eyeWide_R": 0.5},  # surprise
    {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
    {"browDown_L": 0.8, "browDown_R": 0.8, "mouthFrown_L": 0.7, "mouthFrown_R": 0.7},  # anger
    {"mouthPucker": 0.9, "eyeSquint_L": 0.3},
]


def _key(name: str) -> str:
    """A spelling-free key: eyeBlink_L, eyeBlinkLeft and EyeBlinkLeft all become 'eyeblinkl'."""
    flat = name.replace("_", "").lower()
    for long, short in (("left", "l"), ("right", "r")):
        if flat.endswith(long):
            flat = flat[: -len(long)] + short
    return flat


def set_expression(head, weights: dict[str, float]) -> int:
    """Set ``head``'s shape keys to ``weights`` (all others to 0, animation removed); returns how many matched."""
    keys = head.data.shape_keys
    keys.animation_data_clear()  # a bundle of several photos keyframes one expression per frame
    wanted = {_key(k): v for k, v in weights.items()}
    matched = 0
    for block in keys.key_blocks[1:]:
        block.value = wanted.get(_key(block.name), 0.0)
        matched += _key(block.name) in wanted
    return matched


def build_scene(api, bundles: str | Path, output: str | Path, cell: int = 256, samples: int = 16) -> dict:
    """Import every bundle in ``bundles`` in a grid, give each head the next expression, render to ``output``."""
    import bpy

    scene = bpy.context.scene
    result = api.batch_import(bundles, scene, cell=cell)
    for i, head in enumerate(result.heads):
        set_expression(head, EXPRESSIONS[i % len(EXPRESSIONS)])
    for obj in scene.objects:  # the photo cameras' backgrounds are not rendered; only the heads and the light
        if obj.type == "CAMERA" and obj != result.camera:
            obj.hide_render = True
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(Path(output).resolve())
    scene.camera = result.camera
    bpy.ops.render.render(write_still=True)
    return {"heads": [h.name for h in result.heads], "skipped": result.skipped, "image": scene.render.filepath}


def _api():
    try:
        from bl_ext.user_default.likeness import api  # Blender with the add-on installed
    except ImportError:  # the bpy module: install the add-on from this checkout into a sandbox first
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
        from blender_sandbox import install_addon

        return install_addon()
    return api


def main(argv: list[str]) -> None:
    argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    if len(argv) != 2:
        sys.exit("usage: examples/batch_scene.py BUNDLE_FOLDER OUTPUT.png")
    api = _api()
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    done = build_scene(api, argv[0], argv[1])
    print(f"{len(done['heads'])} heads rendered to {done['image']}; skipped: {done['skipped'] or 'none'}")


if __name__ == "__main__":
    main(sys.argv)
