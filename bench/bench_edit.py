"""Text edits: seconds per edit with the tiny model, seconds per UNet call with a real-sized UNet of random
weights (so the CPU time of a real edit can be computed), memory peak, and a face-recognition identity distance
between renders of the head before and after the edit.

Usage: .venv/bin/python bench/bench_edit.py [--steps 20] [--size 32] [--bundle BUNDLE] [--sd-model FOLDER]
                                             [--device auto] [--skip-real-size] [--json FILE]

Without ``--sd-model`` the tiny random Stable Diffusion of the tests is built (tests/tiny_sd.py) and the edit
runs at ``--size`` px; with real weights pass ``--sd-model FOLDER --size 512`` (and ``--device cuda`` on a GPU):
the same script, unchanged. The real-sized part builds Stable Diffusion 1.5's UNet (860 M parameters) and VAE
from their configs with random weights (nothing downloaded) and times one classifier-free-guided UNet call at
64×64 latents (a 512 px view) and one VAE encode + backward at 512 px: one score-distillation step costs about
their sum plus the render. Identity: dlib's ResNet face descriptor (PyPI ``dlib-bin`` + ``face-recognition-models``,
optional) of a frontal render before and after; dlib calls two faces the same person below 0.6.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from shared_paths import find_ict_model  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kB


def frontal(bundle: Path, size: int = 400) -> np.ndarray:
    """A frontal render (uint8 RGB) of a bundle's head under a soft front light."""
    from likeness.appearance import light as sh
    from likeness.edit.cameras import head_centre, orbit_camera
    from likeness.appearance.relight import bundle_head, render_lit

    model, manifest, textures = bundle_head(bundle)
    photo = manifest["photos"][0] if manifest["photos"] else None
    weights = np.array([photo["expression"].get(n, 0.0) for n in model.expression_names]) if photo else 0
    verts = model.neutral + np.tensordot(weights, model.expression_basis, axes=1)
    cam, m = orbit_camera(head_centre(model, model.neutral), 0.0, 0.0, size)
    light = sh.directional((0.2, 0.3, 1.0), 0.7, 0.35)
    image, _ = render_lit(model, verts @ m[:3, :3].T + m[:3, 3], cam, textures, sh.rotate(light, m[:3, :3]), None, size)
    return image


def face_descriptor(rgb: np.ndarray):
    """dlib's 128-D face descriptor of the largest face, or None (dlib not installed / no face found)."""
    try:
        import importlib.util

        import dlib
        spec = importlib.util.find_spec("face_recognition_models")
    except ImportError:
        return None
    if spec is None:
        return None
    models = Path(spec.submodule_search_locations[0]) / "models"
    detector = dlib.get_frontal_face_detector()
    faces = detector(rgb, 1)
    if not faces:
        return None
    box = max(faces, key=lambda r: r.width() * r.height())
    shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))(rgb, box)
    net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    return np.array(net.compute_face_descriptor(rgb, shape))


def real_sized(device: str) -> dict:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    out = {}
    start = time.perf_counter()
    unet = UNet2DConditionModel(  # Stable Diffusion 1.5's UNet config
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, sample_size=512)
    dtype = torch.float16 if device == "cuda" else torch.float32
    unet, vae = unet.to(device, dtype).eval().requires_grad_(False), vae.to(device, dtype).eval().requires_grad_(False)
    out["build_s"] = round(time.perf_counter() - start, 1)
    out["unet_parameters_m"] = round(sum(p.numel() for p in unet.parameters()) / 1e6, 1)
    latents = torch.randn(2, 4, 64, 64, device=device, dtype=dtype)
    context = torch.randn(2, 77, 768, device=device, dtype=dtype)
    times = []
    with torch.no_grad():
        for _ in range(2):
            start = time.perf_counter()
            unet(latents, torch.tensor([500, 500], device=device), encoder_hidden_states=context)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    out["unet_call_cfg_s"] = round(min(times), 2)
    image = torch.rand(1, 3, 512, 512, device=device, dtype=dtype, requires_grad=True)
    start = time.perf_counter()
    vae.encode(image * 2 - 1).latent_dist.mean.sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    out["vae_encode_backward_s"] = round(time.perf_counter() - start, 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="rendered view px (32 for the tiny model, 512 real)")
    parser.add_argument("--bundle", help="bundle to edit (default: the astronaut, reconstructed here)")
    parser.add_argument("--sd-model", help="diffusers folder (default: the tiny random model of the tests)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prompt", default="an old man with a grey beard")
    parser.add_argument("--skip-real-size", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from likeness.service.cli import astronaut_photo
    from likeness.edit.job import EditRequest, run
    from likeness.edit.render import pick_device
    from likeness.service.pipeline import Engine, ReconstructRequest

    device = pick_device(args.device)
    figures: dict = {"device": device, "torch_threads": torch.get_num_threads(), "steps": args.steps,
                     "size": args.size}
    engine = Engine(use_blendshapes=False)
    with tempfile.TemporaryDirectory(prefix="bench-edit-") as tmp:
        tmp = Path(tmp)
        model = str(find_ict_model())
        bundle = Path(args.bundle) if args.bundle else tmp / "astronaut"
        if not args.bundle:
            engine.reconstruct(ReconstructRequest(photos=[str(astronaut_photo())], output=str(bundle),
                                                  texture_size=1024, model=model))
        sd_model = args.sd_model
        if sd_model is None:
            from tiny_sd import make_tiny_sd

            sd_model = str(make_tiny_sd(tmp / "tiny_sd"))
            figures["model"] = "tiny random (tests/tiny_sd.py)"
        else:
            figures["model"] = sd_model
        for what in ("albedo", "albedo,shape,expression,light"):
            start = time.perf_counter()
            run(engine, EditRequest(prompt=args.prompt, bundle=str(bundle), output=str(tmp / f"edit_{what}"),
                                    what=tuple(what.split(",")), steps=args.steps, size=args.size, device=device,
                                    sd_model=sd_model, model=model))
            figures[f"edit_{what}_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        run(engine, EditRequest(prompt=args.prompt, bundle=None, output=str(tmp / "created"), steps=args.steps,
                                size=args.size, device=device, sd_model=sd_model, model=model, texture_size=1024))
        figures["create_s"] = round(time.perf_counter() - start, 2)
        before, after = frontal(bundle), frontal(tmp / "edit_albedo,shape,expression,light")
        a, b = face_descriptor(before), face_descriptor(after)
        photo = face_descriptor(np.asarray(Image.open(astronaut_photo()).convert("RGB")))

        def distance(x, y):
            return None if x is None or y is None else round(float(np.linalg.norm(x - y)), 3)

        figures["identity_distance_before_after"] = distance(a, b)
        figures["identity_distance_photo_render"] = distance(a, photo)
    figures["peak_rss_gb_tiny"] = round(peak_rss_gb(), 2)
    if not args.skip_real_size:
        figures["real_sized"] = real_sized(device)
        figures["peak_rss_gb"] = round(peak_rss_gb(), 2)
        real = figures["real_sized"]
        figures["estimated_real_step_s"] = round(real["unet_call_cfg_s"] + real["vae_encode_backward_s"], 1)
    for key, value in figures.items():
        print(f"{key:36s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
