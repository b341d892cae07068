"""Speed of SMIRK's encoder (likeness.learned.smirk) on a random checkpoint in SMIRK_em1.pt's layout.

Usage: .venv/bin/python bench/bench_smirk.py [--device auto|cpu|cuda|mps] [--runs 30] [--batch 16] [--check-timm]

Real SMIRK weights are not available here, and speed does not depend on the values: the checkpoint is random.
Measures the strict load of the checkpoint, SMIRK's face crop (an affine warp to 224²), and the network on one
crop at a time and in batches (all three sub-encoders). ``--check-timm`` (where timm and a working torchvision
are installed, e.g. a CUDA machine) also compares our backbones with timm's own on the same random weights.
Writes bench/results/smirk_speed_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "backend"))


def random_checkpoint(path: Path) -> Path:
    import torch

    from likeness.learned.smirk import SmirkEncoder

    torch.manual_seed(0)

    def random(k, v):  # torch's random init, perturbed: activations keep a trained net's scale (no denormals)
        return torch.rand_like(v) + 0.5 if k.endswith("running_var") else v + torch.randn_like(v) * 0.05 * (v.dim() <= 1)

    state = {"smirk_encoder." + k: random(k, v) if v.dtype.is_floating_point else v
             for k, v in SmirkEncoder().state_dict().items()}
    torch.save(state, path)
    return path


def timed(fn, runs: int, sync) -> list[float]:
    out = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - start) * 1000)
    return out


def check_timm(device: str) -> dict:
    """Our backbones against timm's own, same random weights: the largest absolute difference per backbone."""
    import timm
    import torch

    from likeness.learned.mobilenet import MobileNetV3Features

    torch.manual_seed(1)
    out = {"timm_version": timm.__version__}
    for name in ("tf_mobilenetv3_small_minimal_100", "tf_mobilenetv3_large_minimal_100"):
        ref = timm.create_model(name, pretrained=False, features_only=True).eval()
        state = {k: (torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.3)
                 if v.dtype.is_floating_point else v for k, v in ref.state_dict().items()}
        ref.load_state_dict(state)
        ours = MobileNetV3Features(name).eval()
        ours.load_state_dict(state, strict=True)
        x = torch.rand(4, 3, 224, 224)
        with torch.no_grad():
            diff = (ref.to(device)(x.to(device))[-1] - ours.to(device)(x.to(device))).abs().max().item()
        out[name] = {"max_abs_diff": diff, "same_keys": list(ref.state_dict()) == list(ours.state_dict())}
    return out


def main() -> None:
    import torch

    from likeness.learned.runtime import pick_device
    from likeness.learned.smirk import SmirkRunner, crop, load_encoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--check-timm", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.set_flush_denormal(True)  # as SmirkRunner does on CPUs: random weights make subnormal activations
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        path = random_checkpoint(Path(tmp) / "SMIRK_em1.pt")
        start = time.perf_counter()
        encoder = load_encoder(path, device)
        load_ms = (time.perf_counter() - start) * 1000
        runner = SmirkRunner(path, args.device)  # what the jobs use: crop, batch to the device, outputs back
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (1080, 1920, 3), np.uint8)
    points = rng.uniform([800, 400], [1100, 800], (478, 2))
    reads = runner.read([photo] * 2, [points] * 2)
    assert reads[0]["shape_params"].shape == (300,) and reads[0]["crop"].shape == (2, 3)
    read_ms = timed(lambda: runner.read([photo], [points]), args.runs, sync)
    crop_ms = timed(lambda: crop(photo, points), args.runs, lambda: None)
    one = torch.rand(1, 3, 224, 224, device=device)
    many = torch.rand(args.batch, 3, 224, 224, device=device)
    with torch.inference_mode():
        for _ in range(3):  # warm-up (cuDNN autotuning, allocator)
            encoder(one), encoder(many)
        single = timed(lambda: encoder(one), args.runs, sync)
        batch = timed(lambda: encoder(many), max(5, args.runs // 4), sync)
    result = {
        "device": device, "torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "load_strict_ms": round(load_ms, 1),
        "crop_ms_median": round(float(np.median(crop_ms)), 2),
        "runner_read_ms_median": round(float(np.median(read_ms)), 2),  # crop + network + outputs, one photo
        "network_ms_per_photo_batch1": {"median": round(float(np.median(single)), 2),
                                         "p90": round(float(np.percentile(single, 90)), 2)},
        f"network_ms_per_photo_batch{args.batch}": round(float(np.median(batch)) / args.batch, 2),
    }
    if args.check_timm:
        result["timm_check"] = check_timm(device)
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"smirk_speed_{device}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
