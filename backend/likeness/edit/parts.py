"""What an edit works on and what it gives back (no torch): :class:`EditInputs`, :class:`EditSettings`,
:class:`EditResult`. Units: metres, head frame; albedo maps sRGB uint8 (S,S,3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.camera import Camera
from ..model.headmodel import HeadModel

PARTS = ("albedo", "shape", "expression", "light")


@dataclass
class EditInputs:
    """The head as it is before the edit."""

    model: HeadModel  # topology and materials
    vertices: np.ndarray  # (V,3) neutral expression, identity applied
    identity: np.ndarray  # (K,)
    identity_basis: np.ndarray | None  # (K,V,3) metres per unit coefficient; None: shape cannot change
    expression: np.ndarray  # (E,) weights in [0,1]
    light: np.ndarray  # (9,3) SH shading, head frame
    maps: dict[int, np.ndarray]  # material index → albedo (S,S,3) sRGB uint8
    photo_view: tuple[Camera, np.ndarray] | None = None  # the photo's camera and model_to_camera (4,4)
    vertex_mask: np.ndarray | None = None  # (V,) in [0,1]: where the shape may change (None: everywhere)
    texel_masks: dict[int, np.ndarray] | None = None  # material → (S,S) in [0,1], same size as its map
    identity_prior: float = 0.0  # weight pulling the identity towards 0 (the mean head), for text → head


@dataclass
class EditSettings:
    what: tuple[str, ...] = ("albedo",)
    steps: int = 200
    strength: float = 0.5  # 0..1: how far the edit may go from the photo
    seed: int = 0
    size: int = 512  # rendered view side in pixels (the diffusion model's resolution)
    map_size: int = 512  # side of the albedo maps while optimising (upsampled onto the full maps at the end)
    views: int = 8  # cameras in a ring around the head (every 45°), pitch −8..12°
    batch: int = 1  # views per step
    learning_rate: float = 0.02


@dataclass
class EditResult:
    maps: dict[int, np.ndarray]  # (S,S,3) sRGB uint8, full size
    vertices: np.ndarray  # (V,3)
    identity: np.ndarray  # (K,)
    expression: np.ndarray  # (E,)
    light: np.ndarray  # (9,3)
    albedo_change: dict[int, np.ndarray] = field(default_factory=dict)  # linear (S,S,3) change, full size
    losses: list[float] = field(default_factory=list)
