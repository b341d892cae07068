"""Delighting and relighting: albedo agreement under different lights, re-render vs photo, speed.

Usage: .venv/bin/python bench/bench_relight.py [--photos N]
Writes bench/results/relight.json and prints a table (figures go into docs/quality.md by hand).

1. Synthetic: one skin tone with the fine detail of the albedo the pipeline baked from the astronaut portrait
   (its high-pass, so the truth has no shading of its own) is put on the ICT head (true pose and shape),
   rendered Lambertian under four SH lights (front, strong left, strong right, top) with the backend's own
   renderer, then delit and baked again (``--occlusion``: the renders with the head's ambient occlusion and the
   delighting dividing it out, as ``likeness reconstruct --occlusion`` does). Reported: error against the true
   albedo (median relative, skin of the face tile, after one global exposure scale), agreement between the
   lights, and the left/right balance under side light, each beside the raw projected texture. (The render uses
   the same Lambertian SH model as the delighting: it measures the estimator, not skin's departures from Lambert.)
2. Real: dev photos are reconstructed, and the head re-rendered under each photo's estimated light from its
   camera; PSNR and SSIM against the photo inside the face tile's mask, beside the PSNR of the same albedo under
   a uniform light at the best exposure (how much of the photo's shading the estimated light explains).
3. Speed: light estimate + division, UV bake and maps for one photo at 2048², warm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from shared_paths import DEV_IMAGES, find_ict_model  # noqa: E402

from likeness.appearance import light as sh  # noqa: E402
from likeness.appearance.albedo import delight  # noqa: E402
from likeness.model.camera import Camera  # noqa: E402
from likeness.model.geometry import head_rotation  # noqa: E402
from likeness.appearance.maps import normal_map, roughness_map  # noqa: E402
from likeness.service.pipeline import Engine, ReconstructRequest  # noqa: E402
from likeness.model.regions import SKIN, vertex_regions  # noqa: E402
from likeness.appearance.relight import bundle_head, relight, render_lit  # noqa: E402
from likeness.appearance.texture import PhotoView, bake_textures, uv_map  # noqa: E402

LIGHTS = {"front": [0.0, 0.2, 1.0], "left": [1.0, 0.2, 0.3], "right": [-1.0, 0.2, 0.3], "top": [0.0, 1.0, 0.3]}
SIZE = 1024


def skin_texels(model) -> np.ndarray:
    uvm = uv_map(model, 0, SIZE)
    skin = (vertex_regions(model) == SKIN) & (np.arange(model.vertex_count) < model.face_vertex_count)
    return uvm.texels[(uvm.blend @ skin.astype(np.float64)) > 0.99]


def detail_albedo(texture: np.ndarray) -> np.ndarray:
    """A skin albedo (sRGB) with the texture's fine detail but none of its large-scale shading: one skin tone
    times the texture's high-pass, so the truth carries no light of its own."""
    import cv2

    linear = sh.SRGB8_TO_LINEAR[texture]
    detail = linear / np.maximum(cv2.GaussianBlur(linear, (0, 0), texture.shape[0] / 64), 1e-3)
    return sh.linear_to_srgb8(np.clip(np.array([0.45, 0.3, 0.22], np.float32) * detail, 0, 1))


def synthetic(engine: Engine, model_path: str, tmp: Path, occlusion: bool) -> dict:
    import skimage.data
    from PIL import Image

    photo = tmp / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    bundle = engine.reconstruct(ReconstructRequest([str(photo)], str(tmp / "astro"), SIZE, model_path))["bundle"]
    _, _, textures = bundle_head(bundle)
    model, _ = engine.model(model_path)
    truth = {i: detail_albedo(t) for i, t in textures.items()}
    texels = skin_texels(model)
    cols = texels % SIZE
    camera = Camera(1400.0, (400.0, 400.0), (800, 800))
    rotation = head_rotation(0.0, 0.0, 0.0)
    verts = model.vertices() @ rotation.T + np.array([0.0, 0.0, -0.6])
    want = sh.SRGB8_TO_LINEAR[truth[0].reshape(-1, 3)[texels]].mean(1)
    out = {}
    for name, direction in LIGHTS.items():
        image, _ = render_lit(model, verts, camera, truth, sh.directional(direction, 0.8, 0.12), max_side=800,
                              occlusion=occlusion)
        view = PhotoView.build(model, image, camera, verts)
        lit = delight(model, view, rotation, occlusion=occlusion)
        for kind, v in (("raw", view), ("albedo", replace(view, rgb=lit.albedo_rgb))):
            got = sh.SRGB8_TO_LINEAR[bake_textures(model, [v], SIZE)[0].reshape(-1, 3)[texels]].mean(1)
            out[(name, kind)] = got
    report = {}
    seen_everywhere = np.all([got > 0.01 for got in out.values()], axis=0) & (want > 0.01)
    left, right = cols[seen_everywhere] < SIZE // 2, cols[seen_everywhere] >= SIZE // 2
    for kind in ("raw", "albedo"):
        ratios = {name: out[(name, kind)][seen_everywhere] / want[seen_everywhere] for name in LIGHTS}
        exposure = {name: float(np.median(r)) for name, r in ratios.items()}
        pattern = {name: r / exposure[name] for name, r in ratios.items()}  # 1 where the albedo is right
        errors = [float(np.median(np.abs(p - 1))) for p in pattern.values()]
        pairs = [float(np.median(np.abs(pattern[a] / pattern[b] - 1)))
                 for i, a in enumerate(LIGHTS) for b in list(LIGHTS)[i + 1:]]
        balance = [float(abs(pattern[n][right].mean() / pattern[n][left].mean() - 1)) for n in ("left", "right")]
        report[kind] = {"error_vs_truth_median": statistics.mean(errors), "per_light_error": dict(zip(LIGHTS, errors)),
                        "between_lights_median": statistics.mean(pairs),
                        "exposure_spread": max(exposure.values()) / min(exposure.values()) - 1,
                        "left_right_imbalance": statistics.mean(balance)}
    return report


def real(engine: Engine, model_path: str, tmp: Path, count: int, occlusion: bool) -> dict:
    from skimage.metrics import structural_similarity

    photos = sorted(DEV_IMAGES.glob("dev_0[0-3]*_london_*.jpg"))[:count]
    psnr, ssim, psnr_flat = [], [], []
    for k, photo in enumerate(photos):
        bundle = engine.reconstruct(ReconstructRequest([str(photo)], str(tmp / f"real{k}"), SIZE, model_path,
                                                       occlusion=occlusion))["bundle"]
        model, manifest, textures = bundle_head(bundle)
        entry = manifest["photos"][0]
        from PIL import Image
        rgb = np.asarray(Image.open(Path(bundle) / entry["path"]).convert("RGB"))
        light = np.asarray(entry["light"]["sh"])
        image, hit = relight(model, entry, textures, light, rgb, max_side=512)
        ambient = np.zeros_like(light)
        ambient[0] = light[0]  # uniform light (exposure matched below): how much shading the direction explains
        flat, _ = relight(model, entry, textures, ambient, rgb, max_side=512)
        ref = np.asarray(Image.fromarray(rgb).resize(image.shape[1::-1], Image.BILINEAR), np.float64)
        face = _face_mask(model, entry, hit)
        diff = (image.astype(np.float64) - ref)[face]
        psnr.append(float(10 * np.log10(255 ** 2 / np.mean(diff ** 2))))
        flat_lin, ref_lin = sh.SRGB8_TO_LINEAR[flat[face]], sh.SRGB8_TO_LINEAR[ref[face].astype(np.uint8)]
        gain = np.median(ref_lin / np.maximum(flat_lin, 1e-4))  # the best uniform exposure for the flat render
        flat_diff = sh.linear_to_srgb8(flat_lin * gain).astype(np.float64) - ref[face]
        psnr_flat.append(float(10 * np.log10(255 ** 2 / np.mean(flat_diff ** 2))))
        _, full = structural_similarity(image, ref.astype(np.uint8), channel_axis=2, full=True, data_range=255)
        ssim.append(float(full[face].mean()))
    return {"photos": len(photos), "psnr_db_median": statistics.median(psnr), "ssim_median": statistics.median(ssim),
            "psnr_db_uniform_light_median": statistics.median(psnr_flat), "psnr_db": psnr, "ssim": ssim}


def _face_mask(model, entry: dict, hit: np.ndarray) -> np.ndarray:
    """Pixels of the render that show the face tile (material 0), from a white-on-black render in flat light."""
    black = replace(model, materials=tuple(replace(m, base_color=(0, 0, 0, m.base_color[3]))
                                           for m in model.materials))
    flat = sh.directional([0, 0, 1], 0.0, 1.0)  # uniform light: the render is the texture
    image, _ = relight(black, entry, {0: np.full((64, 64, 3), 255, np.uint8)}, flat, None, max_side=max(hit.shape),
                       occlusion=False)
    return hit & (image.mean(2) > 200)


def speed(engine: Engine, model_path: str, occlusion: bool) -> dict:
    from likeness.capture.images import load_photo

    model, _ = engine.model(model_path)
    timings = {"delight": [], "bake": [], "maps": []}
    for photo_path in sorted(DEV_IMAGES.glob("dev_0[0-3]*_london_*.jpg"))[:6]:
        photo = load_photo(photo_path)
        result, _ = engine.analyse([photo], model_path)
        fit = result.photos[0]
        cam = Camera(photo.focal_px, photo.principal_point, photo.size)
        verts = model.vertices(result.identity) + np.tensordot(fit.expression, model.expression_basis, axes=1)
        view = PhotoView.build(model, photo.rgb, cam, verts @ fit.rotation.T + fit.translation)
        t0 = time.perf_counter()
        lit = delight(model, view, fit.rotation, occlusion=occlusion)
        t1 = time.perf_counter()
        textures = bake_textures(model, [replace(view, rgb=lit.albedo_rgb)], 2048)
        t2 = time.perf_counter()
        normal_map(textures[0])
        [roughness_map(model, i, 2048) for i in textures]
        t3 = time.perf_counter()
        for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2)):
            timings[key].append(value)
    return {key: statistics.median(v[1:]) for key, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--parts", default="synthetic,real,speed", help="comma-separated subset to run")
    parser.add_argument("--occlusion", action="store_true",
                        help="with the head's own occlusion: in the synthetic renders, the delighting and the "
                             "re-renders")
    args = parser.parse_args()
    parts = args.parts.split(",")
    model_path = str(find_ict_model())
    engine = Engine()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"synthetic": lambda: synthetic(engine, model_path, Path(tmp), args.occlusion),
                "real": lambda: real(engine, model_path, Path(tmp), args.photos, args.occlusion),
                "speed": lambda: speed(engine, model_path, args.occlusion)}
        results = {part: runs[part]() for part in parts}
    out = REPO / "bench" / "results" / ("relight_occlusion.json" if args.occlusion else "relight.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    if "synthetic" in results:
        s = results["synthetic"]
        print("synthetic (median relative error, skin of the face):  raw texture | albedo")
        for key in ("error_vs_truth_median", "between_lights_median", "exposure_spread", "left_right_imbalance"):
            print(f"  {key:24s} {s['raw'][key]:.3f} | {s['albedo'][key]:.3f}")
    if "real" in results:
        r = results["real"]
        print(f"real: {r['photos']} photos, re-render under the estimated light vs photo in the face mask: "
              f"PSNR {r['psnr_db_median']:.1f} dB, SSIM {r['ssim_median']:.3f} (medians); under a uniform light "
              f"(best exposure): PSNR {r['psnr_db_uniform_light_median']:.1f} dB")
    if "speed" in results:
        print("speed per photo at 2048² (s): " + ", ".join(f"{k} {v:.3f}" for k, v in results["speed"].items()))


if __name__ == "__main__":
    main()
