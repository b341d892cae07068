"""The expression encoder network (torch): features of one face → 53 expression weights and the head's angles.

A small residual MLP. Its input is :func:`likeness.learned.features.encoder_features`, standardised by the
training set's mean and spread (kept in the checkpoint); its outputs are the model's expression weights
(clamped to [0, 1] at inference) and yaw/pitch/roll in units of 30°.
"""

from __future__ import annotations

import torch
from torch import nn

ANGLE_UNIT_DEG = 30.0


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
    """(B, features) → (B, expressions) raw weights and (B, 3) angles / :data:`ANGLE_UNIT_DEG`."""

    def __init__(self, features: int, expressions: int, width: int = 384, blocks: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.inp = nn.Linear(features, width)
        self.blocks = nn.Sequential(*[Block(width, dropout) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.expression = nn.Linear(width, expressions)
        self.angles = nn.Linear(width, 3)
        self.in_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.in_drop(self.inp((x - self.mean) / self.scale))
        h = self.norm(self.blocks(h))
        return self.expression(h), self.angles(h)


def weight_loss(raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 against the true weights where a shape is on; where it is off only positive outputs cost (any
    output ≤ 0 reads as weight 0), so the network may push absent shapes below zero freely."""
    return torch.where(target > 0, (raw - target).abs(), torch.relu(raw)).mean()
