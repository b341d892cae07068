"""Train the expression encoder: ``python -m likeness.learned.train`` (docs/encoder.md).

1. Training data (:mod:`likeness.learned.trainset`, :mod:`likeness.learned.dataset`): scenes of the *train* skin
   family drawn from :data:`~likeness.learned.trainset.DATA_SEED`, rendered with the NumPy renderer and read by
   MediaPipe, cached in ``--data`` and reused.
2. Features (:mod:`likeness.learned.features`) against a landmark template, the Procrustes mean of the
   training faces.
   Or, with ``--packed``, all of that read from one file made by :mod:`likeness.learned.pack` (to train on
   another machine, e.g. a GPU, without the render cache).
3. The network (:mod:`likeness.learned.network`) is trained with AdamW from :data:`TRAIN_SEED` on ``--device``,
   optionally with ``--mirror`` of the faces shown mirrored (:mod:`likeness.learned.mirror`); the last shard is
   kept aside to report a validation error while training (it never chooses anything).

The defaults are the shipped weights' recipe (data version 1, 60 shards, 15 epochs, channels 1, no mirror, CPU);
docs/encoder.md, "Training", says what the other settings gave.
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

from .cycles import RENDER_DEVICES
from .dataset import SHARD, VERSIONS
from .features import CROP_INNER, FACE_POINTS, FEATURES, LANDMARKS, ROTATION_COLS, SCORE_COLS, SHAPE_COLS
from .trainset import SKINS, need_task, prepare

TRAIN_SEED = 11
SCORE_DROP = 0.2  # fraction of training faces shown without MediaPipe's blendshape scores
LANDMARK_NOISE = 0.004  # extra jitter (inter-ocular units) on the landmark features while training
ON_WEIGHT = 2.0  # errors on shapes that are on count this much more than weight read into absent shapes
MIRROR = 0.0  # fraction of training faces shown mirrored (likeness.learned.mirror; docs/encoder.md: 0.5 was tried)
RANDCONV = 0.0  # fraction of training crops seen through a random convolution (random_convolution; docs/encoder.md)
LANDMARK_DROP = 0.0  # fraction of training faces shown without landmarks and scores (drop_landmarks; docs/encoder.md)
LANDMARK_LOSS = 0.0  # weight of the true landmarks as a second training target (--landmark-loss; docs/encoder.md)
RESIDUAL_UNIT = 0.05  # inter-ocular distances: MediaPipe's face points lie about this far from the true ones


def _augment(crops, rng: np.random.Generator):
    """Random CROP_INNER windows of the stored crops with brightness, contrast, colour and grey-scale jitter:
    (B, S, S, 3) uint8 → (B, 3, CROP_INNER, CROP_INNER) in [0, 1]."""
    import torch

    n, size = crops.shape[0], crops.shape[1]
    span = size - CROP_INNER
    offsets = rng.integers(0, span + 1, (n, 2))
    out = torch.stack([crops[i, y:y + CROP_INNER, x:x + CROP_INNER] for i, (y, x) in enumerate(offsets)])
    out = out.permute(0, 3, 1, 2).float() / 255.0
    dev = out.device
    gain = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 1, 1, 1)) * rng.uniform(0.9, 1.1, (n, 3, 1, 1))).float().to(dev)
    mean = out.mean((1, 2, 3), keepdim=True)
    contrast = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 1, 1, 1))).float().to(dev)
    out = ((out - mean) * contrast + mean) * gain
    grey = torch.from_numpy(rng.random(n) < 0.1).to(dev)
    out[grey] = out[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return out.clamp(0.0, 1.0)


def random_convolution(images, picked: np.ndarray, rng: np.random.Generator):
    """The crops that ``picked`` (B,) bool marks seen through a random convolution (Xu et al., ICLR 2021, "Robust and
    generalizable visual representation learning via random convolutions"): one kernel size for the batch (1, 3, 5
    or 7 px), each crop its own 3 → 3 kernel with weights ~ N(0, 1/(3 k²)); the filtered crop is brought to the
    crop's own mean and spread per channel and blended with it by a random share α ~ U(0, 1). Shapes stay where
    they are, while the colours and fine textures of our renderer change from face to face, so the network cannot
    lean on them. (B, 3, S, S) in [0, 1] → the same shape, clamped to [0, 1]."""
    import torch

    n = images.shape[0]
    k = int(rng.choice([1, 3, 5, 7]))
    weights = rng.normal(0.0, 1.0 / np.sqrt(3 * k * k), (n, 3, 3, k, k))
    alpha = rng.uniform(0.0, 1.0, n)
    rows = np.flatnonzero(picked)
    if len(rows) == 0:
        return images
    dev = images.device
    idx = torch.from_numpy(rows).to(dev)
    sel = images[idx]
    m = len(rows)
    kernel = torch.from_numpy(weights[rows].reshape(m * 3, 3, k, k)).float().to(dev)
    out = torch.nn.functional.conv2d(sel.reshape(1, m * 3, *sel.shape[2:]), kernel, padding=k // 2, groups=m)
    out = out.reshape(sel.shape)
    mean, std = sel.mean((2, 3), keepdim=True), sel.std((2, 3), keepdim=True)
    out = (out - out.mean((2, 3), keepdim=True)) / (out.std((2, 3), keepdim=True) + 1e-6) * std + mean
    a = torch.from_numpy(alpha[rows]).float().to(dev).view(-1, 1, 1, 1)
    images = images.clone()
    images[idx] = (a * sel + (1 - a) * out).clamp(0.0, 1.0)
    return images


def drop_landmarks(x, lost, mean):
    """The faces that ``lost`` (B,) bool marks shown without MediaPipe's landmarks and scores, so that the image
    branch has to read their expression alone: their landmark features set to the training set's mean (``mean``,
    the network's normaliser: 0 once standardised) and their scores to none (zeros, as with no scores); the head's
    rotation kept. ``x`` (B, FEATURES) features; returns a copy."""
    x = x.clone()
    x[lost, SHAPE_COLS] = mean[SHAPE_COLS]
    x[lost, SCORE_COLS] = 0.0
    return x


class _TorchMirror:
    """:class:`likeness.learned.mirror.Mirror`'s constants on the training device, applied to the rows of a batch
    that ``mask`` picks."""

    def __init__(self, mirror, device: str) -> None:
        import torch

        from .mirror import IMAGE_FLIP

        def t(a, dtype=torch.float32):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        self.template, self.perm = t(mirror.template), t(mirror.perm, torch.long)
        self.reflect_t, self.shift = t(mirror.reflect.T), t(mirror.shift)
        self.flip, self.unreflect = t(IMAGE_FLIP), t(np.linalg.inv(mirror.reflect))
        self.scores, self.expression = t(mirror.scores, torch.long), t(mirror.expression, torch.long)
        self.angles = t([-1.0, 1.0, -1.0])

    def __call__(self, mask, x, images, y, a):
        """The batch with the rows ``mask`` picks mirrored: features, images (B, 3, S, S; None: none to flip),
        weights and angles."""
        import torch

        xm = x[mask]
        aligned = xm[:, SHAPE_COLS].reshape(-1, LANDMARKS, 3) + self.template
        points = aligned[:, self.perm] @ self.reflect_t + self.shift - self.template
        rot = self.flip @ xm[:, ROTATION_COLS].reshape(-1, 3, 3) @ self.unreflect
        x, y, a = x.clone(), y.clone(), a.clone()
        x[mask] = torch.cat([points.reshape(len(xm), -1), rot.reshape(len(xm), 9), xm[:, SCORE_COLS][:, self.scores]],
                            1)
        if images is not None:
            images = images.clone()
            images[mask] = images[mask].flip(3)
        y[mask] = y[mask][:, self.expression]
        a[mask] = a[mask] * self.angles
        return x, images, y, a

    def residuals(self, mask, r):
        """(B, 468 × 3) landmark residuals (:func:`likeness.learned.trainset.landmark_residuals`) of the faces
        that ``mask`` picks, as their mirror images have them: each point takes its twin's, reflected."""
        r = r.clone()
        points = self.perm[:FACE_POINTS]
        r[mask] = (r[mask].reshape(-1, FACE_POINTS, 3)[:, points] @ self.reflect_t).reshape(int(mask.sum()), -1)
        return r


def train(x: np.ndarray, crops: np.ndarray, y: np.ndarray, angles: np.ndarray, epochs: int, seed: int,
          width: int, blocks: int, channels: float = 1.0,
          val: tuple[np.ndarray, ...] | None = None, log=print, device: str = "cpu",
          mirror=None, mirror_fraction: float = MIRROR, randconv: float = RANDCONV,
          landmark_drop: float = LANDMARK_DROP, residuals: np.ndarray | None = None,
          landmark_loss: float = LANDMARK_LOSS, backbone: tuple[np.ndarray, np.ndarray] | None = None):
    """The trained :class:`~likeness.learned.network.ExpressionNet` (CPU, eval mode). ``crops``: (N, S, S, 3)
    uint8 face crops; ``val``: features, crops and weights to report on while training; ``device``: where it
    trains (the random streams are drawn on the CPU, so the batches are the same on any device); ``mirror``: a
    :class:`likeness.learned.mirror.Mirror`, to show ``mirror_fraction`` of the faces mirrored; ``randconv``: the
    fraction of crops seen through :func:`random_convolution`; ``landmark_drop``: the fraction of faces shown
    without landmarks and scores (:func:`drop_landmarks`); ``residuals`` (N, 468 × 3): how far MediaPipe's face
    points lie from the true ones (:func:`likeness.learned.trainset.landmark_residuals`), a second target read
    from the network's hidden layer by a head of its own (not kept in the checkpoint) at weight ``landmark_loss``,
    so that the network learns where the face truly is, not only what the expression is. ``backbone``: the
    frozen face-mesh network's features of the crops and of their mirror images (N, B) each
    (:func:`backbone_of`), read instead of the crops (no crop jitter or random convolutions then); ``val[1]`` is
    then the validation faces' features too."""
    import torch

    from .network import ANGLE_UNIT_DEG, ExpressionNet, centre, weight_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ExpressionNet(x.shape[1], y.shape[1], width, blocks, channels=channels,
                        backbone=backbone[0].shape[1] if backbone is not None else 0)
    net.mean.copy_(torch.from_numpy(x.mean(0)))
    net.scale.copy_(torch.from_numpy(np.maximum(x.std(0), 1e-3)))
    if backbone is not None:
        net.image.mean.copy_(torch.from_numpy(backbone[0].mean(0)))
        net.image.scale.copy_(torch.from_numpy(np.maximum(backbone[0].std(0), 1e-3)))
        bt, bmt = (torch.from_numpy(b).to(device) for b in backbone)
    aux = torch.nn.Linear(width, FACE_POINTS * 3) if residuals is not None and landmark_loss > 0 else None
    params = list(net.parameters()) + (list(aux.parameters()) if aux is not None else [])
    net.to(device)
    if aux is not None:
        aux.to(device)
        rt = torch.from_numpy(residuals / RESIDUAL_UNIT).float().to(device)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    ct = torch.from_numpy(crops).to(device) if backbone is None else None
    at = torch.from_numpy(angles / ANGLE_UNIT_DEG).float().to(device)
    batch = 128
    steps = max(epochs * int(np.ceil(len(x) / batch)), 1)
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    score_cols = torch.zeros(x.shape[1], dtype=torch.bool, device=device)
    score_cols[SCORE_COLS] = True
    noise_scale = torch.zeros(x.shape[1], device=device)
    noise_scale[SHAPE_COLS] = LANDMARK_NOISE
    flip = _TorchMirror(mirror, device) if mirror is not None and mirror_fraction > 0 else None
    began = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch].to(device)
            # random draws in the first recipe's order (noise, score drop, crop jitter), the mirror's last
            xb = xt[idx] + torch.randn(len(idx), x.shape[1]).to(device) * noise_scale
            drop = torch.from_numpy(rng.random(len(idx)) < SCORE_DROP).to(device)
            xb[drop[:, None] & score_cols[None]] = 0.0
            yb, ab = yt[idx], at[idx]
            images = _augment(ct[idx], rng) if backbone is None else None
            rb = rt[idx] if aux is not None else None
            mirrored = torch.zeros(len(idx), dtype=torch.bool, device=device)
            if flip is not None:
                mirrored = torch.from_numpy(rng.random(len(idx)) < mirror_fraction).to(device)
                xb, images, yb, ab = flip(mirrored, xb, images, yb, ab)
                rb = flip.residuals(mirrored, rb) if rb is not None else None
            if backbone is not None:  # the mirror image's own features where the face is shown mirrored
                images = torch.where(mirrored[:, None], bmt[idx], bt[idx])
            elif randconv > 0:
                images = random_convolution(images, rng.random(len(idx)) < randconv, rng)
            if landmark_drop > 0:
                xb = drop_landmarks(xb, torch.from_numpy(rng.random(len(idx)) < landmark_drop).to(device), net.mean)
            h = net.hidden(xb, images)
            raw, ang = net.expression(h), net.angles(h)
            loss = weight_loss(raw, yb, ON_WEIGHT) + 0.05 * (ang - ab).abs().mean()
            if aux is not None:
                loss = loss + landmark_loss * ((aux(h) - rb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if val is not None and (epoch % 5 == 4 or epoch == epochs - 1):
            net.eval()
            with torch.no_grad():
                image = torch.from_numpy(val[1]).to(device)
                h = net.hidden(torch.from_numpy(val[0]).to(device), image if backbone is not None else centre(image))
                pred = net.expression(h).clamp(0, 1).cpu().numpy()
                fix = aux(h).cpu().numpy() * RESIDUAL_UNIT if aux is not None and len(val) > 3 else None
            on = val[2] > 0
            points = ""
            if fix is not None:  # the face points' mean 2D error (inter-ocular distances): as seen → corrected
                seen, now = (np.linalg.norm(r.reshape(-1, FACE_POINTS, 3)[..., :2], axis=-1).mean()
                             for r in (val[3], val[3] - fix))
                points = f", face points {seen:.4f} → {now:.4f}"
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}, validation on-shape error "
                f"{np.abs(pred - val[2])[on].mean():.3f}, leak {np.where(on, 0, pred).sum(1).mean():.2f}{points} "
                f"({time.perf_counter() - began:.0f} s)", flush=True)
    return net.cpu().eval()


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
    metadata = {"config": json.dumps({"features": FEATURES, "width": meta["width"], "blocks": meta["blocks"],
                                      "channels": meta.get("channels", 1.0), "backbone": meta.get("backbone", 0),
                                      "backbone_sha256": meta.get("backbone_sha256"),
                                      "backbone_side": meta.get("backbone_side", 256)}),
                "expression_names": json.dumps(list(names)), "recipe": json.dumps(meta)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backbone_of(crops: np.ndarray, cache: Path | None = None, side: int = 256,
                log=print) -> tuple[np.ndarray, np.ndarray, str]:
    """The face-mesh backbone's features (:func:`likeness.learned.meshnet.backbone_features` at input ``side``,
    float16) of the crops (N, S, S, 3) uint8 and of their mirror images, and the network file's sha256; MediaPipe's
    Face Landmarker bundle as for the training data. Kept in ``cache`` (an .npz) when given, and reused while the
    crops, side and network match (about 9 ms a face on 2 cores at 256 px, 5 ms at 192)."""
    import torch

    from .meshnet import backbone_features, load_meshnet

    net = load_meshnet(need_task("--backbone needs MediaPipe's Face Landmarker bundle"))
    stamp = f"{net.digest}:{side}:{len(crops)}:{hashlib.sha256(crops[::97].tobytes()).hexdigest()}"
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            if str(z["stamp"]) == stamp:
                return z["features"], z["mirrored"], net.digest
    began, out = time.perf_counter(), []
    for flip in (False, True):
        parts = []
        for start in range(0, len(crops), 64):
            c = torch.from_numpy(np.ascontiguousarray(crops[start:start + 64]))
            parts.append(backbone_features(net, c.flip(2) if flip else c, side).numpy().astype(np.float16))
        out.append(np.concatenate(parts))
        log(f"backbone features of {len(crops)} {'mirrored ' if flip else ''}crops "
            f"({time.perf_counter() - began:.0f} s)", flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".part.npz")
        np.savez(tmp, features=out[0], mirrored=out[1], stamp=np.array(stamp))
        tmp.replace(cache)
    return out[0], out[1], net.digest


def main(argv: list[str] | None = None) -> None:
    from .mirror import Mirror
    from .runtime import SHIPPED, pick_device

    parser = argparse.ArgumentParser(description="Train the expression encoder (see docs/encoder.md).")
    parser.add_argument("--data", type=Path, default=Path("out/encoder_data"), help="training-data cache folder")
    parser.add_argument("--shards", type=int, default=60, help=f"training shards of {SHARD} renders")
    parser.add_argument("--data-version", type=int, choices=VERSIONS, default=1,
                        help="which training renders (likeness.learned.dataset.VERSION; the shipped weights: 1)")
    parser.add_argument("--cycles-shards", type=int, default=0,
                        help="shards of Cycles-shaded renders (data version 6; needs bpy) joining --data-version's")
    parser.add_argument("--packed", type=Path, help="train from a pack (python -m likeness.learned.pack) "
                        "instead of the render cache")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--channels", type=float, default=1.0, help="width factor of the image branch's layers")
    parser.add_argument("--workers", type=int, default=2, help="processes rendering the training data")
    parser.add_argument("--render-device", default="cpu", choices=RENDER_DEVICES,
                        help="where Cycles renders the Cycles shards that are missing (auto: a GPU when Cycles "
                             "finds one; its pictures differ from the CPU's in their noise only)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    parser.add_argument("--mirror", type=float, default=MIRROR, help="fraction of faces shown mirrored")
    parser.add_argument("--randconv", type=float, default=RANDCONV,
                        help="fraction of crops seen through a random convolution")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="the training's seed (batches, draws, init)")
    parser.add_argument("--landmark-drop", type=float, default=LANDMARK_DROP,
                        help="fraction of faces shown without landmarks and scores (the image branch alone)")
    parser.add_argument("--landmark-loss", type=float, default=LANDMARK_LOSS,
                        help="weight of the true face points as a second target (0: not used)")
    parser.add_argument("--backbone", action="store_true",
                        help="read MediaPipe's face-mesh network's features of the crops instead of training a CNN")
    parser.add_argument("--backbone-side", type=int, default=256, choices=(128, 192, 256),
                        help="input side (px) the face-mesh network runs at: smaller is faster")
    parser.add_argument("--model", help="ICT model (.npz or folder); default as for `likeness reconstruct`")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="where the checkpoint goes")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if args.packed:
        from .pack import unpack

        data = unpack(args.packed)
        data["meta"]["packed"] = args.packed.name
    else:
        data = prepare(args.data, args.shards, args.workers, args.model, args.data_version,
                       truth=args.landmark_loss > 0, cycles_shards=args.cycles_shards,
                       render_device=args.render_device)
    made = time.perf_counter()
    x, crops, y, angles = data["features"], data["crops"], data["expression"], data["angles"]
    held = len(x) - min(SHARD, len(x) // 10)
    device = pick_device(args.device)
    residuals = data.get("residuals")
    if args.landmark_loss > 0 and residuals is None:
        raise SystemExit("--landmark-loss needs the render cache (the true face points are drawn again from its "
                         "scenes), not a pack")
    backbone, digest = None, None
    if args.backbone:
        shaded = f"_c{args.cycles_shards}" if args.cycles_shards else ""
        cache = None if args.packed else (args.data / f"backbone_v{args.data_version}_{args.shards}{shaded}"
                                          f"_{args.backbone_side}.npz")
        *backbone, digest = backbone_of(crops, cache, args.backbone_side)
        backbone = [b.astype(np.float32) for b in backbone]
    images = crops if backbone is None else backbone[0]
    val = (x[held:], images[held:], y[held:]) + ((residuals[held:],) if residuals is not None else ())
    net = train(x[:held], crops[:held], y[:held], angles[:held], args.epochs, args.seed, args.width, args.blocks,
                args.channels, val=val, device=device,
                mirror=Mirror(data["template"], data["names"]), mirror_fraction=args.mirror, randconv=args.randconv,
                landmark_drop=args.landmark_drop, residuals=None if residuals is None else residuals[:held],
                landmark_loss=args.landmark_loss,
                backbone=None if backbone is None else (backbone[0][:held], backbone[1][:held]))
    meta = dict(data["meta"], command="python -m likeness.learned.train", train_seed=args.seed,
                epochs=args.epochs, width=args.width, blocks=args.blocks, channels=args.channels, skins=SKINS,
                on_weight=ON_WEIGHT, mirror=args.mirror, randconv=args.randconv, landmark_drop=args.landmark_drop,
                landmark_loss=args.landmark_loss, backbone=0 if backbone is None else int(backbone[0].shape[1]),
                backbone_sha256=digest, backbone_side=args.backbone_side,
                score_drop=SCORE_DROP,
                landmark_noise=LANDMARK_NOISE, device=device,
                train_minutes=round((time.perf_counter() - made) / 60, 1))
    digest = save(net, data["template"], data["crop_template"], data["names"], args.out, meta)
    print(f"wrote {args.out} (sha256 {digest}) in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
