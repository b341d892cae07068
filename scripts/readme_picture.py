"""Make the README's pictures: the astronaut photo beside Cycles renders of its reconstructed head, and the
relighting picture (photo | albedo | the head relit from the subject's left and right).

Runs the real pipeline through the add-on (installed from the built zip into a temporary Blender user folder)
and the real backend subprocess, then renders with Cycles on the CPU.

Usage: .venv/bin/python scripts/readme_picture.py [-o docs/images/astronaut_result.jpg]
                                                 [--relight-output docs/images/astronaut_relight.jpg]
The astronaut portrait (NASA, public domain) ships inside scikit-image.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from blender_sandbox import REPO, SANDBOX, bpy, install_addon
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402
from PIL import Image  # noqa: E402


def render(camera: bpy.types.Object, path: Path, size: int) -> np.ndarray:
    scene = bpy.context.scene
    scene.camera = camera
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGBA")).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "images" / "astronaut_result.jpg"))
    parser.add_argument("--size", type=int, default=1024, help="render size before cropping to the head")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--relight-output", default=str(REPO / "docs" / "images" / "astronaut_relight.jpg"))
    args = parser.parse_args()

    api = install_addon()
    from likeness.service.cli import astronaut_photo

    photo_path = astronaut_photo()
    bpy.ops.wm.read_homefile(use_empty=True)
    model = os.environ.get("LIKENESS_ICT_MODEL") or REPO.parent / "shared" / "models" / "ict_facekit" / "ict_face_model.npz"
    head, camera = api.reconstruct([photo_path], output_dir=SANDBOX / "bundles", texture_size=2048,
                                   model=model if Path(model).is_file() else None)[:2]

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.render.film_transparent = True
    world = bpy.data.worlds.new("studio")
    grey_world(world, 0.35)
    scene.world = world
    key = bpy.data.lights.new("key", "AREA")
    key.energy, key.size = 60.0, 1.0
    key_obj = bpy.data.objects.new("key", key)
    head_centre = head.matrix_world @ head.data.vertices[0].co
    key_obj.location = head_centre + camera.matrix_world.to_quaternion() @ Vector((0.3, 0.3, 0.8))
    key_obj.rotation_euler = (camera.matrix_world.to_3x3() @ Matrix.Rotation(math.radians(-20), 3, "X")).to_euler()
    scene.collection.objects.link(key_obj)

    # a second camera: the photo's camera turned 40° around the head
    side = bpy.data.objects.new("three_quarter", camera.data.copy())
    side.data.shift_x = side.data.shift_y = 0.0
    pivot = Matrix.Translation(head_centre) @ Matrix.Rotation(math.radians(40), 4, "Z") @ Matrix.Translation(-head_centre)
    side.matrix_world = pivot @ camera.matrix_world
    scene.collection.objects.link(side)

    photo_img = Image.open(photo_path).convert("RGB")
    photo = np.asarray(photo_img.resize((args.size, args.size))).astype(np.float32)
    # crop every panel to a square around the head (from the fitted landmarks, in render pixels)
    manifest = json.loads((Path(head["likeness_bundle"]) / "manifest.json").read_text())
    lm = np.array(manifest["photos"][0]["landmarks_68_px"]) * args.size / photo_img.width
    centre, half = lm.mean(0), 1.1 * np.ptp(lm, axis=0).max()
    x0, y0 = (centre - half).astype(int).clip(0)
    crop = (slice(y0, y0 + int(2 * half)), slice(x0, x0 + int(2 * half)))
    panels = [photo[crop]]
    for cam, name in ((camera, "front"), (side, "side")):
        rgba = render(cam, SANDBOX / f"{name}.png", args.size)[crop]
        alpha = rgba[..., 3:] / 255.0
        panels.append(rgba[..., :3] * alpha + 40.0 * (1 - alpha))
    save(panels, Path(args.output))

    # relighting: a dim fill and one sun from either side; the albedo's face tile beside the photo
    grey_world(world, 0.04)
    bpy.data.objects.remove(key_obj)
    side_size = panels[0].shape[0]
    albedo = Image.open(Path(head["likeness_bundle"]) / "textures" / "skin_face_albedo.png").convert("RGB")
    relit = [panels[0], np.asarray(albedo.resize((side_size, side_size))).astype(np.float32)]
    for name, angle in (("from_left", 70.0), ("from_right", -70.0)):
        sun = bpy.data.objects.new(name, bpy.data.lights.new(name, "SUN"))
        sun.data.energy = 5.0
        sun.data.angle = math.radians(5)
        # tilt the sun's beam (−Z) toward the face from the subject's left (+X) or right, a little from above
        sun.rotation_euler = (math.radians(75), 0.0, math.radians(angle))
        scene.collection.objects.link(sun)
        rgba = render(camera, SANDBOX / f"{name}.png", args.size)[crop]
        alpha = rgba[..., 3:] / 255.0
        relit.append(rgba[..., :3] * alpha + 40.0 * (1 - alpha))
        bpy.data.objects.remove(sun)
    save(relit, Path(args.relight_output))


def grey_world(world: bpy.types.World, value: float) -> None:
    """A uniform grey sky (Blender 5 worlds come with a Background node; older ones use ``color``)."""
    world.color = (value, value, value)
    if world.node_tree is not None and "Background" in world.node_tree.nodes:
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (value, value, value, 1.0)


def save(panels: list[np.ndarray], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(panels, axis=1).clip(0, 255).astype(np.uint8)).save(out, quality=88)
    print(out)


if __name__ == "__main__":
    main()
