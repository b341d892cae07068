"""Pinhole cameras in the bundle's conventions (docs/bundle.md).

Camera frame is OpenGL style (+X image right, +Y image up, looking along −Z); pixels have their origin at the
top-left corner with y down. A head-frame point ``p`` lands at ``q = R p + t`` in the camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Intrinsics of one photo: focal length and principal point in pixels, image size (width, height)."""

    focal_px: float
    principal_point: tuple[float, float]
    size: tuple[int, int]

    def project(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame points (N,3) → pixel positions (N,2) and distances in front of the camera (N,)."""
        depth = -q[:, 2]
        safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        cx, cy = self.principal_point
        px = np.stack([cx + self.focal_px * q[:, 0] / safe, cy - self.focal_px * q[:, 1] / safe], -1)
        return px, depth

    def projection_jacobian(self, q: np.ndarray) -> np.ndarray:
        """d(pixel)/d(q) for camera-frame points: (N,2,3)."""
        d = -q[:, 2]
        f = self.focal_px
        jac = np.zeros((len(q), 2, 3))
        jac[:, 0, 0] = f / d
        jac[:, 0, 2] = f * q[:, 0] / d ** 2
        jac[:, 1, 1] = -f / d
        jac[:, 1, 2] = -f * q[:, 1] / d ** 2
        return jac


def model_to_camera(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """4×4 matrix from rotation (3,3) and translation (3,) in metres."""
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, trans
    return m
