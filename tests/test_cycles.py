"""Training renders shaded by Cycles (likeness.learned.cycles): the head where the rasteriser puts it, a face
MediaPipe finds, the same random draws. Cycles runs in a child process, as in the training's render workers (bpy's
state is process-wide and the add-on tests share this one)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from likeness.model.camera import Camera
from likeness.model.geometry import head_rotation

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from likeness.model.camera import Camera
    from likeness.model.geometry import head_rotation
    from likeness.model.headmodel import load_ict
    from likeness.learned.cycles import CyclesHeadRenderer
    from likeness.learned.render import Lighting
    from likeness.learned.skins import SkinPainter

    model = load_ict(sys.argv[1])
    rot = head_rotation(20, 5, 8)
    trans = np.array([0.02, -0.01, -0.6]) - rot @ model.neutral[model.landmarks_68].mean(0)
    camera = Camera(560.0, (150.0, 152.0), (320, 288))
    light = Lighting(np.array([0.5, 0.4, 0.77]), np.ones(3), np.full(3, 0.3), 0.2, 0.2)
    renderer = CyclesHeadRenderer(model, samples=4)
    skin = SkinPainter(model).paint(3)
    head = renderer._shade(model.vertices() @ rot.T + trans, skin, camera, light)
    rng = np.random.default_rng(5)
    rgb = renderer.render(model.vertices(), skin, rot, trans, camera, light, rng, occluder=True)
    np.savez(sys.argv[2], head=head, rgb=rgb, next=rng.random())
""")


def test_cycles_draws_the_head_where_the_rasteriser_does_with_the_same_draws(ict, ict_path, tmp_path):
    from likeness.appearance.raster import rasterize
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.render import HeadRenderer, Lighting, _facing
    from likeness.learned.skins import SkinPainter

    out = tmp_path / "cycles.npz"
    subprocess.run([sys.executable, "-c", SCRIPT, str(ict_path), str(out)], check=True, capture_output=True,
                   timeout=300)
    with np.load(out) as f:
        head, rgb, after_cycles = f["head"], f["rgb"], float(f["next"])
    rot = head_rotation(20, 5, 8)
    trans = np.array([0.02, -0.01, -0.6]) - rot @ ict.neutral[ict.landmarks_68].mean(0)
    camera = Camera(560.0, (150.0, 152.0), (320, 288))
    assert head.shape == (288, 320, 4) and rgb.shape == (288, 320, 3) and rgb.dtype == np.uint8

    # the silhouette: Cycles' alpha against the rasteriser's coverage of the same triangles
    renderer = HeadRenderer(ict)
    px, depth = camera.project(ict.vertices() @ rot.T + trans)
    tris = _facing(renderer.triangles, px, 320, 288)
    covered = rasterize(px[tris], 320, 288, depth[tris])[0] >= 0
    drawn = head[..., 3] > 0.5
    assert (covered & drawn).sum() / (covered | drawn).sum() > 0.97  # measured 0.998; 10 px off: < 0.9
    lit = head[drawn][:, :3].mean()
    assert 0.05 < lit < 1.0 and head[head[..., 3] < 1e-3][:, :3].max() < 1e-3  # a lit head on nothing (premultiplied)

    # the same draws as the rasteriser's render (backdrop, occluder, finish), so a scene's stream goes on alike
    rng = np.random.default_rng(5)
    light = Lighting(np.array([0.5, 0.4, 0.77]), np.ones(3), np.full(3, 0.3), 0.2, 0.2)
    renderer.render(ict.vertices(), SkinPainter(ict).paint(3), rot, trans, camera, light, rng, occluder=True)
    assert rng.random() == after_cycles

    # a face MediaPipe finds where the head is (the occluder covers part of the lower face only)
    found = LandmarkDetector(max_faces=1).detect(rgb)
    nose_px, _ = camera.project((ict.vertices()[ict.landmarks_68[30]] @ rot.T + trans)[None])
    iod = np.linalg.norm(found.points_px[33] - found.points_px[263])
    assert np.linalg.norm(found.points_px[1] - nose_px[0]) < 0.25 * iod


DEVICES = textwrap.dedent("""
    import sys
    from likeness.errors import BadInput
    from likeness.model.headmodel import load_ict
    from likeness.learned.cycles import CyclesHeadRenderer

    model = load_ict(sys.argv[1])
    print("cpu", CyclesHeadRenderer(model, device="cpu").device, CyclesHeadRenderer(model).scene.cycles.device)
    renderer = CyclesHeadRenderer(model, device="auto")
    print("auto", renderer.device, renderer.scene.cycles.device)
    for asked in ("cuda", "vulkan"):
        try:
            print(asked, CyclesHeadRenderer(model, device=asked).device)
        except BadInput as exc:
            print(asked, "refused:", exc)
""")


def test_cycles_renders_where_it_is_asked_and_refuses_a_gpu_it_cannot_find(ict_path):
    """``auto`` takes a GPU where Cycles finds one, else the CPU; a GPU asked for by name that is not there, or a
    device it does not know, is refused with a message (the training's ``--render-device``)."""
    run = subprocess.run([sys.executable, "-c", DEVICES, str(ict_path)], capture_output=True, text=True,
                         timeout=300, check=True)
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line.split(" ")[0] in
                 ("cpu", "auto", "cuda", "vulkan"))
    assert lines["cpu"] == "CPU CPU"
    assert lines["auto"] in ("CPU CPU", "OPTIX GPU", "CUDA GPU")
    if lines["auto"] == "CPU CPU":  # no GPU here: CUDA by name is refused, not quietly the CPU
        assert lines["cuda"].startswith("refused: Cycles finds no CUDA device")
    assert lines["vulkan"].startswith("refused: Unknown render device 'vulkan'")
