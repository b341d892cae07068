"""Train the expression encoder: ``python -m likeness.learned.train`` (docs/encoder.md).

1. Training data (:mod:`likeness.learned.dataset`): scenes of the *train* skin family drawn from
   :data:`DATA_SEED`, rendered with the NumPy renderer and read by MediaPipe, cached in ``--data`` and reused.
2. Features (:mod:`likeness.learned.features`) against a landmark template, the Procrustes mean of the
   training faces.
3. The network (:mod:`likeness.learned.network`) is trained with AdamW from :data:`TRAIN_SEED`; the last shard
   is kept aside to report a validation error while training (it never chooses anything).
4. The checkpoint (safetensors, float16 tensors) goes to ``--out`` with its recipe in the metadata, and its
   sha256 is printed.

Nothing from any benchmark (scene seeds, skins, photos) is used here: benchmarks draw their scenes from their
own seeds and dress them with the *heldout* skin family or with reconstructions of photos.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .dataset import SHARD, fill, load
from .features import CROP_INNER, FEATURES, encoder_features, landmarks_3d, mean_template

DATA_SEED = 7100
TRAIN_SEED = 11
SKINS = 400
SCORE_DROP = 0.2  # fraction of training faces shown without MediaPipe's blendshape scores
LANDMARK_NOISE = 0.004  # extra jitter (inter-ocular units) on the landmark features while training
ON_WEIGHT = 2.0  # errors on shapes that are on count this much more than weight read into absent shapes


def features_of(data: dict[str, np.ndarray], template: np.ndarray) -> np.ndarray:
    return np.stack([encoder_features(p, d, s, template)
                     for p, d, s in zip(data["points_px"], data["depth_px"], data["scores"])])


def _augment(crops, rng: np.random.Generator):
    """Random CROP_INNER windows of the stored crops with brightness, contrast, colour and grey-scale jitter:
    (B, S, S, 3) uint8 → (B, 3, CROP_INNER, CROP_INNER) in [0, 1]."""
    import torch

    n, size = crops.shape[0], crops.shape[1]
    span = size - CROP_INNER
    offsets = rng.integers(0, span + 1, (n, 2))
    out = torch.stack([crops[i, y:y + CROP_INNER, x:x + CROP_INNER] for i, (y, x) in enumerate(offsets)])
    out = out.permute(0, 3, 1, 2).float() / 255.0
    gain = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 1, 1, 1)) * rng.uniform(0.9, 1.1, (n, 3, 1, 1))).float()
    mean = out.mean((1, 2, 3), keepdim=True)
    contrast = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 1, 1, 1))).float()
    out = ((out - mean) * contrast + mean) * gain
    grey = torch.from_numpy(rng.random(n) < 0.1)
    out[grey] = out[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return out.clamp(0.0, 1.0)


def train(x: np.ndarray, crops: np.ndarray, y: np.ndarray, angles: np.ndarray, epochs: int, seed: int,
          width: int, blocks: int, val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None, log=print):
    """The trained :class:`~likeness.learned.network.ExpressionNet` (CPU, eval mode). ``crops``: (N, S, S, 3)
    uint8 face crops; ``val``: features, crops and weights to report on while training."""
    import torch

    from .network import ANGLE_UNIT_DEG, ExpressionNet, centre, weight_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ExpressionNet(x.shape[1], y.shape[1], width, blocks)
    net.mean.copy_(torch.from_numpy(x.mean(0)))
    net.scale.copy_(torch.from_numpy(np.maximum(x.std(0), 1e-3)))
    xt, yt, ct = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(crops)
    at = torch.from_numpy(angles / ANGLE_UNIT_DEG).float()
    batch = 128
    steps = max(epochs * int(np.ceil(len(x) / batch)), 1)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    score_cols = torch.zeros(x.shape[1], dtype=torch.bool)
    score_cols[478 * 3 + 9:] = True
    noise_scale = torch.zeros(x.shape[1])
    noise_scale[:478 * 3] = LANDMARK_NOISE
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb = xt[idx] + torch.randn(len(idx), x.shape[1]) * noise_scale
            drop = torch.from_numpy(rng.random(len(idx)) < SCORE_DROP)
            xb[drop[:, None] & score_cols[None]] = 0.0
            raw, ang = net(xb, _augment(ct[idx], rng))
            loss = weight_loss(raw, yt[idx], ON_WEIGHT) + 0.05 * (ang - at[idx]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if val is not None and (epoch % 5 == 4 or epoch == epochs - 1):
            net.eval()
            with torch.no_grad():
                pred = net(torch.from_numpy(val[0]), centre(torch.from_numpy(val[1])))[0].clamp(0, 1).numpy()
            on = val[2] > 0
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}, validation on-shape error "
                f"{np.abs(pred - val[2])[on].mean():.3f}, leak {np.where(on, 0, pred).sum(1).mean():.2f}", flush=True)
    return net.eval()


def save(net, template: np.ndarray, crop_template: np.ndarray, names: tuple[str, ...], path: Path,
         meta: dict) -> str:
    """Write the checkpoint (float16 weights, float32 normalisers and templates); returns its sha256."""
    import torch
    from safetensors.torch import save_file

    keep = ("mean", "scale", "running_mean", "running_var")  # normalisers stay float32
    tensors = {k: (v.half() if v.dtype == torch.float32 and not k.endswith(keep) else v).contiguous()
               for k, v in net.state_dict().items()}
    tensors["template"] = torch.from_numpy(template.astype(np.float32))
    tensors["crop_template"] = torch.from_numpy(crop_template.astype(np.float32))
    metadata = {"config": json.dumps({"features": FEATURES, "width": meta["width"], "blocks": meta["blocks"]}),
                "expression_names": json.dumps(list(names)), "recipe": json.dumps(meta)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    from ..blendshapes import find_task
    from ..correspondence import load_table
    from ..headmodel import load_ict, resolve_model_path
    from .features import crop_template
    from .runtime import SHIPPED

    parser = argparse.ArgumentParser(description="Train the expression encoder (see docs/encoder.md).")
    parser.add_argument("--data", type=Path, default=Path("out/encoder_data"), help="training-data cache folder")
    parser.add_argument("--shards", type=int, default=60, help=f"training shards of {SHARD} renders")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="processes rendering the training data")
    parser.add_argument("--model", help="ICT model (.npz or folder); default as for `likeness reconstruct`")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="where the checkpoint goes")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model_path = resolve_model_path(args.model)
    task = find_task()
    if task is None:
        raise SystemExit("MediaPipe's Face Landmarker model is needed for the training data: "
                         "`likeness models install mediapipe-blendshapes` or set $LIKENESS_MEDIAPIPE_TASK.")
    model = load_ict(model_path)
    names = model.expression_names
    paths = fill(args.data, str(model_path), str(task), "train", args.shards, DATA_SEED, SKINS, args.workers)
    made = time.perf_counter()
    data = load(paths)
    keep = data["found"] > 0
    print(f"{int(keep.sum())} of {len(keep)} renders have a face found by MediaPipe", flush=True)
    data = {k: v[keep] for k, v in data.items()}
    faces = np.stack([landmarks_3d(p, d) for p, d in zip(data["points_px"], data["depth_px"])]).astype(np.float64)
    template = mean_template(faces[:2000])
    x = features_of(data, template)
    y, angles, crops = data["expression"].astype(np.float32), data["angles"].astype(np.float32), data["crop"]
    held = len(x) - min(SHARD, len(x) // 10)
    net = train(x[:held], crops[:held], y[:held], angles[:held], args.epochs, TRAIN_SEED, args.width, args.blocks,
                val=(x[held:], crops[held:], y[held:]))
    meta = {"command": "python -m likeness.learned.train", "data_seed": DATA_SEED, "train_seed": TRAIN_SEED,
            "renders": int(len(keep)), "faces": int(len(x)), "shards": args.shards, "epochs": args.epochs,
            "width": args.width, "blocks": args.blocks, "skins": SKINS, "skin_family": "train",
            "on_weight": ON_WEIGHT, "score_drop": SCORE_DROP, "landmark_noise": LANDMARK_NOISE,
            "data_minutes": round((made - start) / 60, 1),
            "train_minutes": round((time.perf_counter() - made) / 60, 1)}
    digest = save(net, template, crop_template(load_table().points(model.neutral.astype(np.float64))), names,
                  args.out, meta)
    print(f"wrote {args.out} (sha256 {digest}) in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
