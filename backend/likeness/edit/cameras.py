"""Cameras around the head for edits and previews (NumPy, no torch). Conventions as in ``likeness.model.camera``."""

from __future__ import annotations

import numpy as np

from ..model.camera import Camera
from ..model.headmodel import HeadModel


def head_centre(model: HeadModel, vertices: np.ndarray) -> np.ndarray:
    """A point (3,) in the middle of the head, a little behind the face's landmarks (head frame, metres)."""
    return vertices[model.landmarks_68].mean(0) + np.array([0.0, 0.02, -0.03])


def orbit_camera(centre: np.ndarray, yaw_deg: float, pitch_deg: float, size: int, distance: float = 0.75,
                 field_m: float = 0.34) -> tuple[Camera, np.ndarray]:
    """A square ``size`` px camera ``distance`` m from the head's ``centre`` (head frame) and its 4×4
    model_to_camera: the head turned by ``yaw_deg`` (> 0: its nose toward the image's right) and ``pitch_deg``
    (> 0: nose down), ``field_m`` metres across the image at the centre's distance."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    rot = rx @ ry
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = -rot @ np.asarray(centre, np.float64) + np.array([0.0, 0.0, -distance])
    return Camera(size * distance / field_m, (size / 2, size / 2), (size, size)), m
