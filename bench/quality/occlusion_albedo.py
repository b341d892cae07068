"""Occlusion in the albedo (docs/quality.md, "Relighting"): are the head's own creases divided out of the skin?

Usage: .venv/bin/python bench/quality/occlusion_albedo.py [--scenes 24] [--texture 512]
About 6 minutes on 2 cores the first time (Cycles renders, cached in ``bench/results/occlusion/``), 2 after.

A **tuning set of its own** (never a benchmark's scenes, never a photo): the synthetic scene plan
(``synth_scenes``) from seed ``SEED + 23``, rendered with Cycles as the synthetic benchmark renders (the skin
textures of one reconstructed dev photo, a soft key light and a uniform fill from the world, so the eye sockets,
the sides of the nose and the folds of expressions get less light than their normals say). The product
reconstructs each render (``Engine.reconstruct``) once with the occlusion divided out (the job's ``occlusion``
option, ``likeness reconstruct --occlusion``) and once without (the default), and the baked face albedo is compared
with the one the render was painted with (same UV layout), over the texels the render sees well (cos² ≥ 0.3 on
the true posed head).

Per scene, the log-luminance ratio baked / true of each texel, less its median over the open texels (true
ambient occlusion ≥ 0.9, computed on the true posed head: the exposure cannot be told from the light); reported:
its median over the occluded texels (occlusion < 0.7; 0 = as bright as the truth, negative = painted darker) and
the median absolute ratio over all seen texels, each as the mean over the scenes. Writes
``bench/results/occlusion_albedo.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import cv2
import numpy as np

import synthetic as bench  # noqa: E402  (sets up the paths to scripts/ and bench/quality/)
import synth_scenes  # noqa: E402
from likeness.appearance.occlusion import vertex_occlusion  # noqa: E402
from likeness.appearance.raster import vertex_normals  # noqa: E402
from likeness.appearance.texture import uv_map  # noqa: E402
from likeness.service.pipeline import ReconstructRequest  # noqa: E402

SEED = synth_scenes.SEED + 23
OPEN, OCCLUDED, SEEN = 0.9, 0.7, 0.3


def luminance(srgb: np.ndarray) -> np.ndarray:
    """Linear luminance (N,) of sRGB uint8 colours (N,3)."""
    from likeness.appearance.light import LUMINANCE, SRGB8_TO_LINEAR

    return SRGB8_TO_LINEAR[srgb] @ LUMINANCE


def texel_values(model, scene: synth_scenes.Scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """True ambient occlusion and how well the render sees each texel of the face tile (N,), N = its texels."""
    verts = synth_scenes.posed_vertices(model, scene)
    m2c = np.asarray(scene.model_to_camera)
    cam_verts = verts @ m2c[:3, :3].T + m2c[:3, 3]
    normals = vertex_normals(cam_verts, model.triangles)
    occlusion = vertex_occlusion(model, cam_verts, normals)
    facing = np.clip(-(normals * cam_verts).sum(1) / np.linalg.norm(cam_verts, axis=1), 0, 1) ** 2
    blend = uv_map(model, 0, size).blend
    return blend @ occlusion, blend @ facing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=24)
    ap.add_argument("--texture", type=int, default=512)
    args = ap.parse_args()
    model_file, engine, model = bench.setup("occlusion")
    scenes = bench.make_scenes(model.expression_names, bench.face_centre(model), seed=SEED)[:args.scenes]
    skin = bench.skin_bundle(engine, model_file, bench.SKIN_SOURCE)
    bench.render_missing(scenes, model, skin, 16, bench.SKIN_SOURCE, False)
    truth_rgb = cv2.cvtColor(cv2.imread(str(skin / "textures" / "skin_face_albedo.png")), cv2.COLOR_BGR2RGB)
    truth_rgb = cv2.resize(truth_rgb, (args.texture, args.texture), interpolation=cv2.INTER_AREA)
    texels = uv_map(model, 0, args.texture).texels
    truth = luminance(truth_rgb.reshape(-1, 3)[texels])
    rows, start = [], time.perf_counter()
    work = bench.CACHE / "bundles"
    work.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        occlusion, seen = texel_values(model, scene, args.texture)
        row = {"scene": scene.name, "category": scene.category}
        for arm, on in (("without", False), ("with", True)):
            out = work / f"{scene.name}_{arm}"
            try:
                engine.reconstruct(ReconstructRequest([str(bench.CACHE / f"{scene.name}.png")], str(out),
                                                      args.texture, model_file, occlusion=on))
            except Exception as exc:  # a render MediaPipe cannot read: the scene is left out
                row["error"] = f"{type(exc).__name__}: {exc}"
                break
            baked_rgb = cv2.cvtColor(cv2.imread(str(out / "textures" / "skin_face_albedo.png")), cv2.COLOR_BGR2RGB)
            baked = luminance(baked_rgb.reshape(-1, 3)[texels])
            good = (seen >= SEEN) & (truth > 1e-3) & (baked > 1e-3)
            ratio = np.log(baked[good] / truth[good])
            ratio -= np.median(ratio[occlusion[good] >= OPEN])
            row[arm] = {"occluded": float(np.median(ratio[occlusion[good] < OCCLUDED])),
                        "all": float(np.median(np.abs(ratio))), "texels": int(good.sum()),
                        "occluded_texels": int((occlusion[good] < OCCLUDED).sum())}
        rows.append(row)
        shown = {a: {k: round(v, 3) for k, v in row[a].items()} for a in ("without", "with") if a in row}
        print(scene.name, shown or row.get("error"), f"({time.perf_counter() - start:.0f} s)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    scored = [r for r in rows if "with" in r]
    summary = {f"{arm}_{k}": float(np.mean([r[arm][k] for r in scored])) for arm in ("without", "with")
               for k in ("occluded", "all")}
    summary.update(scenes=len(scored), failed=len(rows) - len(scored), seed=SEED, texture=args.texture)
    print(json.dumps(summary, indent=1))
    path = bench.RESULTS / "occlusion_albedo.json"
    path.write_text(json.dumps({"summary": summary, "scenes": rows, "git": bench.git_state()}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
