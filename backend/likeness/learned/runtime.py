"""Loading and running the expression encoder in the backend.

The weights are a safetensors file (no pickle, nothing executed on load): the network's tensors, the landmark
template (``template``, (478,3)), the crop template (``crop_template``, (468,2)), and metadata (JSON strings) with the network's size, the expression names it
was trained for and how it was made. :func:`find_weights` looks at ``$LIKENESS_EXPRESSION_ENCODER``, then the
copy shipped in the package. torch is imported only here, when an encoder is first loaded.

Each face is read twice, as it is and as in a mirror (:mod:`likeness.learned.mirror`), and the two readings are
averaged with the mirrored one's left and right swapped back (:func:`read_faces`), so that the reading favours
neither side of the face (docs/encoder.md, "Reading the face and its mirror image").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..paths import TASK_HINT, encoder_env
from .features import FEATURES, encoder_features, face_crop
from .meshnet import SIDES as BACKBONE_SIDES
from .meshnet import backbone_size
from .mirror import Mirror

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "expression_encoder.safetensors"
HINT = "Remove the file or point $LIKENESS_EXPRESSION_ENCODER at a checkpoint made by `python -m likeness.learned.train`."


def find_weights() -> Path | None:
    """The encoder checkpoint to use when the encoder is on: the one ``$LIKENESS_EXPRESSION_ENCODER`` names (a
    path), else the shipped one, else None."""
    env = encoder_env()
    if isinstance(env, Path):
        return env
    return SHIPPED if SHIPPED.is_file() else None


def torch_available() -> bool:
    """torch and safetensors both import."""
    try:
        import safetensors  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def pick_device(device: str = "auto") -> str:
    """``auto`` → cuda where present, else mps, else cpu; otherwise the named device (checked)."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu"
    if device not in ("cpu", "cuda", "mps"):
        raise BadInput(f"Unknown device {device!r}.", "Use auto, cpu, cuda or mps.")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("CUDA was asked for, but torch sees no CUDA device.", "Use --device cpu or auto.")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BadInput("MPS was asked for, but torch sees no Apple GPU.", "Use --device cpu or auto.")
    return device


class ExpressionEncoder:
    """A loaded encoder: :meth:`predict` maps faces' landmarks and scores to expression weights. ``mirrored``:
    read each face and its mirror image (:func:`read_faces`; the product's way), else the face alone. ``task``:
    MediaPipe's Face Landmarker bundle (:func:`likeness.capture.blendshapes.find_task`), needed by checkpoints that
    read its face-mesh network (``--backbone``)."""

    def __init__(self, path: str | Path, expression_names: tuple[str, ...], device: str = "auto",
                 mirrored: bool = True, task: str | Path | None = None) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        from .network import ExpressionNet

        path = Path(path)
        if not path.is_file():
            raise BadInput(f"The expression encoder {path} does not exist.", HINT)
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
            config = json.loads(meta["config"])
            names = tuple(json.loads(meta["expression_names"]))
            width, blocks, features = int(config["width"]), int(config["blocks"]), int(config["features"])
            channels = float(config.get("channels", 1.0))
            backbone = int(config.get("backbone", 0))
            side = int(config.get("backbone_side", 256))
            if not (8 <= width <= 4096 and 1 <= blocks <= 16 and 0.25 <= channels <= 4.0):
                raise ValueError(f"network size {width} × {blocks} × {channels} is out of range")
        except (SafetensorError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadInput(f"The expression encoder {path} is not a valid checkpoint ({exc}).", HINT) from exc
        if names != tuple(expression_names):
            raise BadInput(f"The expression encoder {path} was trained for other expression shapes.", HINT)
        if features != FEATURES:
            raise BadInput(f"The expression encoder {path} expects {features} features, "
                           f"this backend makes {FEATURES}.", HINT)
        template, crop = tensors.pop("template", None), tensors.pop("crop_template", None)
        if template is None or tuple(template.shape) != (478, 3) or crop is None or tuple(crop.shape) != (468, 2):
            raise BadInput(f"The expression encoder {path} lacks its landmark templates.", HINT)
        if backbone and (side not in BACKBONE_SIDES or backbone != backbone_size(side)):
            raise BadInput(f"The expression encoder {path} reads {backbone} backbone features at {side} px, "
                           f"this backend makes {backbone_size(side) if side in BACKBONE_SIDES else 'none'}.", HINT)
        self.backbone = _backbone(path, config, task) if backbone else None
        self.backbone_side = side
        net = ExpressionNet(FEATURES, len(names), width, blocks, channels=channels, backbone=backbone)
        try:
            net.load_state_dict({k: v.float() for k, v in tensors.items()})
        except RuntimeError as exc:
            raise BadInput(f"The expression encoder {path} does not fit its own description ({exc}).", HINT) from exc
        self.device = pick_device(device)
        self.net = net.to(self.device).eval()
        self.template, self.crop_template = template.double().numpy(), crop.double().numpy()
        self.mirror = Mirror(self.template, names) if mirrored else None
        self.path, self.metadata = path, meta

    def inputs(self, rgb: np.ndarray, points_px: np.ndarray, depth_px: np.ndarray,
               scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the network reads of one face: features (FEATURES,) and the face crop (S, S, 3) uint8."""
        return (encoder_features(points_px, depth_px, scores, self.template),
                face_crop(rgb, points_px, self.crop_template))

    def predict(self, features: np.ndarray, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features (B, FEATURES) and crops (B, S, S, 3) uint8 → weights (B, E) in [0, 1] and (yaw, pitch,
        roll) (B, 3) in degrees."""
        return read_faces(self.net, features, crops, self.mirror, self.device, self.backbone, self.backbone_side)


def _backbone(path: Path, config: dict, task: str | Path | None):
    """The face-mesh network a checkpoint's image branch reads (:mod:`likeness.learned.meshnet`), from MediaPipe's
    Face Landmarker bundle ``task``, checked to be the one it was trained on."""
    from .meshnet import load_meshnet

    if task is None or not Path(task).is_file():
        raise BadInput(f"The expression encoder {path} reads MediaPipe's face-mesh network, and MediaPipe's Face "
                       "Landmarker bundle is not installed.", TASK_HINT)
    net = load_meshnet(task)
    if net.digest != config.get("backbone_sha256"):
        raise BadInput(f"The expression encoder {path} was trained on another face-mesh network than the one in "
                       f"{task}.", HINT)
    return net


def read_faces(net, features: np.ndarray, crops: np.ndarray, mirror: Mirror | None = None,
               device: str = "cpu", backbone=None, backbone_side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """What ``net`` (an :class:`~likeness.learned.network.ExpressionNet` on ``device``) reads of B faces: features
    (B, FEATURES) and crops (B, S, S, 3) uint8 → weights (B, E) in [0, 1] and (yaw, pitch, roll) (B, 3) in
    degrees. With ``mirror`` (the :class:`~likeness.learned.mirror.Mirror` of the network's landmark template and
    expression names) each face is read a second time as in a mirror, in the same batch, and the two readings
    averaged, the mirrored one's weights swapped back left ↔ right and its yaw and roll negated. The weights are
    averaged as the network gives them, before they are clamped to [0, 1]: training lets it read an absent shape
    below 0 (:func:`likeness.learned.network.weight_loss`), so a clear "absent" in one reading outweighs a faint
    "present" in the other (on the tuning renders: leak 1.92 averaged after clamping, 1.85 before). A network
    with a backbone branch reads ``backbone``'s features of the crops at input ``backbone_side`` px
    (:func:`likeness.learned.meshnet.backbone_features`, on the CPU) instead of the crops."""
    import torch

    from .network import ANGLE_UNIT_DEG, centre

    x, c = np.asarray(features, np.float32), np.asarray(crops, np.uint8)
    if mirror is not None:
        x, c = np.concatenate([x, mirror.features(x)]), np.concatenate([c, mirror.crops(c)])
    ct = torch.from_numpy(np.ascontiguousarray(c))
    with torch.inference_mode():
        if backbone is not None:
            from .meshnet import backbone_features

            image = backbone_features(backbone, ct, backbone_side).to(device)
        else:
            image = centre(ct).to(device)
        raw, angles = net(torch.from_numpy(x).to(device), image)
    # to the CPU first: Apple's MPS has no float64
    weights = raw.cpu().numpy().astype(np.float64)
    angles = angles.cpu().numpy().astype(np.float64) * ANGLE_UNIT_DEG
    if mirror is not None:
        n = len(features)
        weights = (weights[:n] + mirror.weights(weights[n:])) / 2.0
        angles = (angles[:n] + mirror.angles(angles[n:])) / 2.0
    return np.clip(weights, 0.0, 1.0), angles
