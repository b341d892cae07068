"""SMIRK's image encoder (Retsinas et al., CVPR 2024; code MIT, ``georgeretsi/smirk``), written here in torch.

``SmirkEncoder`` has SMIRK's three sub-encoders with SMIRK's module names, so the published ``SMIRK_em1.pt``
loads into it strictly: its ``state_dict`` matches ``shared/reference/smirk_encoder_state_dict.json`` key for
key, shape for shape and in order (``tests/test_smirk.py``).

- ``pose_encoder``: tf_mobilenetv3_small_minimal_100 → global average pool → Linear(576, 6): the head's
  global rotation (axis-angle, 3) and a weak-perspective camera (scale, tx, ty);
- ``shape_encoder``: tf_mobilenetv3_large_minimal_100 → Linear(960, 300): FLAME shape coefficients;
- ``expression_encoder``: the same backbone → Linear(960, 55): 50 FLAME expression coefficients, 2 eyelid
  weights (clamped to [0, 1]) and the jaw (opening ≥ 0 by ReLU, the two other axes clamped to ±0.2 rad).

Input: SMIRK's face crop (:func:`crop_matrix`: a square around MediaPipe's landmarks, 1.4 × their mean
extent, warped to 224 × 224), RGB in [0, 1], NCHW. Checkpoints are read with ``torch.load(weights_only=True)``
or safetensors, never unpickled otherwise; anything missing, extra or misshapen is refused naming the key.
torch is imported by this module, which only :mod:`likeness.learned` users import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInput
from .mobilenet import MobileNetV3Features

CROP_SIZE = 224
CROP_SCALE = 1.4  # SMIRK's demo: crop_face(image, landmarks, scale=1.4, image_size=224)
PREFIX = "smirk_encoder."  # how SMIRK's training code stores the encoder inside SMIRK_em1.pt
HINT = ("Use SMIRK's published pretrained_models/SMIRK_em1.pt (see docs/flame_smirk.md) and install it with "
        "`likeness models install smirk --from FILE`.")
N_SHAPE, N_EXP = 300, 50


def _pooled(backbone: nn.Module, img: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(backbone(img), 1).flatten(1)


class PoseEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = MobileNetV3Features("tf_mobilenetv3_small_minimal_100")
        self.pose_cam_layers = nn.Sequential(nn.Linear(self.encoder.num_features, 6))

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.pose_cam_layers(_pooled(self.encoder, img))
        return {"pose_params": out[:, :3], "cam": out[:, 3:]}


class ShapeEncoder(nn.Module):
    def __init__(self, n_shape: int = N_SHAPE) -> None:
        super().__init__()
        self.encoder = MobileNetV3Features("tf_mobilenetv3_large_minimal_100")
        self.shape_layers = nn.Sequential(nn.Linear(self.encoder.num_features, n_shape))

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"shape_params": self.shape_layers(_pooled(self.encoder, img))}


class ExpressionEncoder(nn.Module):
    def __init__(self, n_exp: int = N_EXP) -> None:
        super().__init__()
        self.n_exp = n_exp
        self.encoder = MobileNetV3Features("tf_mobilenetv3_large_minimal_100")
        self.expression_layers = nn.Sequential(nn.Linear(self.encoder.num_features, n_exp + 2 + 3))

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.expression_layers(_pooled(self.encoder, img))
        n = self.n_exp
        jaw = torch.cat([F.relu(out[:, n + 2:n + 3]), out[:, n + 3:n + 5].clamp(-0.2, 0.2)], dim=1)
        return {"expression_params": out[:, :n], "eyelid_params": out[:, n:n + 2].clamp(0.0, 1.0), "jaw_params": jaw}


class SmirkEncoder(nn.Module):
    """SMIRK's encoder: ``forward(img)`` → pose_params (B,3), cam (B,3), shape_params (B,300),
    expression_params (B,50), eyelid_params (B,2), jaw_params (B,3)."""

    def __init__(self, n_exp: int = N_EXP, n_shape: int = N_SHAPE) -> None:
        super().__init__()
        self.pose_encoder = PoseEncoder()
        self.shape_encoder = ShapeEncoder(n_shape)
        self.expression_encoder = ExpressionEncoder(n_exp)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**self.pose_encoder(img), **self.shape_encoder(img), **self.expression_encoder(img)}


# Checkpoints ------------------------------------------------------------------------------------------------

def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: safetensors, or a ``torch.save`` file read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"The SMIRK checkpoint {path} does not exist.", HINT)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for foreign or damaged files
        raise BadInput(f"{path.name} is not a readable tensor checkpoint ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:200] if str(exc) else ''}).", HINT) from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path.name} holds a {type(data).__name__}, not a dict of named tensors.", HINT)
    return data


def encoder_state(checkpoint: dict, source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """The encoder's tensors of a SMIRK checkpoint, ``smirk_encoder.`` stripped (as SMIRK's demo does), checked
    against :class:`SmirkEncoder` key for key and shape for shape. A bare encoder dict (no prefix) is accepted."""
    prefixed = any(str(k).startswith(PREFIX) for k in checkpoint)
    state = {str(k)[len(PREFIX):] if prefixed else str(k): v for k, v in checkpoint.items()
             if not prefixed or str(k).startswith(PREFIX)}
    reference = SmirkEncoder().state_dict()
    where = PREFIX if prefixed else ""
    for key, tensor in state.items():
        if key not in reference:
            raise BadInput(f"{source} has an unexpected encoder tensor '{where}{key}' that SMIRK's encoder does not "
                           "have (a different model or version?).", HINT)
        if not isinstance(tensor, torch.Tensor):
            raise BadInput(f"{source}: '{where}{key}' is a {type(tensor).__name__}, not a tensor.", HINT)
        if tuple(tensor.shape) != tuple(reference[key].shape):
            raise BadInput(f"{source}: '{where}{key}' has shape {list(tensor.shape)}, SMIRK's encoder needs "
                           f"{list(reference[key].shape)}.", HINT)
    missing = [k for k in reference if k not in state]
    if missing:
        raise BadInput(f"{source} lacks the encoder tensor '{PREFIX}{missing[0]}'"
                       f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}.", HINT)
    return state


def load_encoder(path: str | Path, device: str = "cpu") -> SmirkEncoder:
    """:class:`SmirkEncoder` with the checkpoint's weights, loaded strictly, in eval mode on ``device``."""
    encoder = SmirkEncoder()
    encoder.load_state_dict(encoder_state(read_checkpoint(path), Path(path).name), strict=True)
    return encoder.eval().to(device)


# Preprocessing -------------------------------------------------------------------------------------------

def crop_matrix(points_px: np.ndarray, scale: float = CROP_SCALE, size: int = CROP_SIZE) -> np.ndarray:
    """SMIRK's face crop as a 2×3 affine (image px → crop px): a square centred on the landmarks' box, ``scale`` ×
    the mean of its width and height (``int``-truncated as SMIRK does), mapped onto [0, size − 1]²."""
    left, top = points_px[:, :2].min(0)
    right, bottom = points_px[:, :2].max(0)
    side = int(((right - left) + (bottom - top)) / 2 * scale)
    centre = np.array([right - (right - left) / 2, bottom - (bottom - top) / 2])
    k = (size - 1) / max(side, 1)
    corner = centre - side / 2
    return np.array([[k, 0.0, -k * corner[0]], [0.0, k, -k * corner[1]]])


def crop(rgb: np.ndarray, points_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(224×224×3 float32 RGB in [0, 1], the 2×3 crop matrix) for an RGB uint8 image and its MediaPipe points."""
    import cv2

    matrix = crop_matrix(points_px)
    face = cv2.warpAffine(rgb, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return face.astype(np.float32) / 255.0, matrix


@dataclass
class SmirkRunner:
    """A loaded encoder on a device; :meth:`predict` reads a batch of photos."""

    path: Path
    device: str = "auto"

    def __post_init__(self) -> None:
        from .runtime import pick_device

        self.device = pick_device(self.device)
        self.encoder = load_encoder(self.path, self.device)
        if self.device == "cpu":  # subnormal activations (near-empty crop borders, untrained nets) cost 10× on CPUs;
            torch.set_flush_denormal(True)  # flushing them to zero changes values below 1e-38 only (process-wide)

    @torch.inference_mode()
    def predict(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """SMIRK's outputs (float64 arrays, one row per face) for crops (N,224,224,3) in [0, 1]."""
        batch = torch.from_numpy(np.ascontiguousarray(faces, np.float32)).permute(0, 3, 1, 2).to(self.device)
        return {k: v.double().cpu().numpy() for k, v in self.encoder(batch).items()}

    def read(self, images: list[np.ndarray], points: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Per photo: SMIRK's outputs and its ``crop`` matrix, for RGB images and their MediaPipe points."""
        crops = [crop(rgb, p) for rgb, p in zip(images, points)]
        out = self.predict(np.stack([c for c, _ in crops]))
        return [{**{k: v[i] for k, v in out.items()}, "crop": crops[i][1]} for i in range(len(crops))]
