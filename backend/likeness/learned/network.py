"""The expression encoder network (torch): one face → 53 expression weights and the head's angles.

Two branches meet in a residual MLP:

- the face's pixels (:func:`likeness.learned.features.face_crop`, the centre :data:`CROP_INNER` square) through a
  small convolutional network (width factor ``channels``: 1 in the shipped weights, about 60 M multiply-adds;
  1.5 about twice that), flattened on a 4 × 4 grid so that left and right stay apart;
- the landmark and score features (:func:`likeness.learned.features.encoder_features`), standardised by the
  training set's mean and spread (kept in the checkpoint).

With ``backbone`` > 0 the image branch is instead a linear read of that many features of MediaPipe's face-mesh
network, trained on photos and frozen (:func:`likeness.learned.meshnet.backbone_features`, computed outside the
network), standardised like the landmark features.

Outputs: the model's expression weights (clamped to [0, 1] at inference) and yaw/pitch/roll in units of 30°.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import CROP_INNER

ANGLE_UNIT_DEG = 30.0


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class FaceCNN(nn.Module):
    """(B, 3, CROP_INNER, CROP_INNER) in [0, 1] → (B, out). ``channels`` scales every layer's width."""

    def __init__(self, out: int, channels: float = 1.0) -> None:
        super().__init__()
        c = [max(8, int(round(k * channels / 8)) * 8) for k in (32, 48, 64, 96, 128)]
        self.body = nn.Sequential(_conv(3, c[0], 5, 2), _conv(c[0], c[1], 3, 2), _conv(c[1], c[1]),
                                  _conv(c[1], c[2], 3, 2), _conv(c[2], c[2]), _conv(c[2], c[3], 3, 2),
                                  _conv(c[3], c[3]), _conv(c[3], c[4], 3, 2), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Linear(c[4] * 16, out)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(image - 0.5).flatten(1))


class BackboneRead(nn.Module):
    """(B, features) of the frozen face-mesh backbone → (B, out): standardised (the training set's mean and
    spread, kept in the checkpoint), dropped out while training, then linear."""

    def __init__(self, features: int, out: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(features, out)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop((features - self.mean) / self.scale))


class Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.drop(torch.nn.functional.gelu(self.fc1(self.norm(x)))))


class ExpressionNet(nn.Module):
    """(features (B, F), image (B, 3, S, S) in [0, 1]) → raw weights (B, E) and angles / :data:`ANGLE_UNIT_DEG`.
    With ``backbone`` > 0 the image is instead the face-mesh backbone's features (B, backbone)."""

    def __init__(self, features: int, expressions: int, width: int = 384, blocks: int = 3,
                 dropout: float = 0.1, channels: float = 1.0, backbone: int = 0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.inp = nn.Linear(features, width)
        self.image = BackboneRead(backbone, width) if backbone > 0 else FaceCNN(width, channels)
        self.blocks = nn.Sequential(*[Block(width, dropout) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.expression = nn.Linear(width, expressions)
        self.angles = nn.Linear(width, 3)
        self.in_drop = nn.Dropout(dropout)

    def hidden(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """(B, width): what both outputs are read from (training may read more from it, e.g. the landmarks)."""
        h = self.in_drop(self.inp((x - self.mean) / self.scale) + self.image(image))
        return self.norm(self.blocks(h))

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(x, image)
        return self.expression(h), self.angles(h)


def centre(crops: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 crops → (B, 3, CROP_INNER, CROP_INNER) floats in [0, 1] from their centres."""
    size = crops.shape[1]
    lo = (size - CROP_INNER) // 2
    return crops[:, lo:lo + CROP_INNER, lo:lo + CROP_INNER].permute(0, 3, 1, 2).float() / 255.0


def weight_loss(raw: torch.Tensor, target: torch.Tensor, on_weight: float = 1.0) -> torch.Tensor:
    """Squared error against the true weights where a shape is on; where it is off only positive outputs cost
    (any output ≤ 0 reads as weight 0), so the network may push absent shapes below zero freely. Squared, not
    absolute: the absolute error's optimum is the conditional median, which is 0 for every shape that is on in
    fewer than half of the faces that look alike, so rare shapes would never be read. ``on_weight`` > 1 counts
    errors on shapes that are on more, against the squared error's pull toward 0 where the face is ambiguous."""
    return torch.where(target > 0, on_weight * (raw - target) ** 2, torch.relu(raw) ** 2).mean()
