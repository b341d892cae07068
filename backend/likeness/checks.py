"""Is a photo within what the fit handles? A per-photo confidence in [0, 1] and human-readable warnings.

The confidence multiplies three factors, each 1 when all is well:

- landmark fit: how far the fitted head's landmarks are from MediaPipe's, relative to the eye distance
  (1 up to 2 %, falling to about 0.1 at 6 %);
- face size: the distance between the outer eye corners in pixels (1 from 75 px, 0 at 25 px);
- head pose: 1 up to 30° of yaw and 20° of pitch, 0 at 75° / 60° (beyond, the far side is guessed).
"""

from __future__ import annotations

import numpy as np

from .fit import PhotoFit
from .geometry import head_angles
from .landmarks import FaceLandmarks

MAX_YAW_DEG = 45.0
MIN_EYE_DISTANCE_PX = 40.0
POOR_FIT_IOD = 0.05


def photo_confidence(fit: PhotoFit, landmarks: FaceLandmarks) -> float:
    """Confidence in [0, 1] of one photo's fit (see the module docstring)."""
    yaw, pitch, _ = head_angles(fit.rotation)
    residual = np.exp(-(max(fit.rmse_iod - 0.02, 0.0) / 0.027) ** 2)
    size = np.clip((landmarks.interocular_px - 25.0) / 50.0, 0.0, 1.0)
    pose = np.clip(1 - (abs(yaw) - 30.0) / 45.0, 0.0, 1.0) * np.clip(1 - (abs(pitch) - 20.0) / 40.0, 0.0, 1.0)
    return float(residual * size * pose)


def photo_warnings(name: str, fit: PhotoFit, landmarks: FaceLandmarks) -> list[str]:
    """Warnings for one photo: turned too far, face too small, landmarks that do not fit (occlusion)."""
    yaw, pitch, _ = head_angles(fit.rotation)
    warnings = list(landmarks.warnings)
    if abs(yaw) > MAX_YAW_DEG:
        warnings.append(f"The head in {name} is turned {abs(yaw):.0f}° sideways; beyond {MAX_YAW_DEG:.0f}° the "
                        "far side of the face is guessed. Add a more frontal photo of the same person.")
    if landmarks.interocular_px < MIN_EYE_DISTANCE_PX:
        warnings.append(f"The face in {name} is small ({landmarks.interocular_px:.0f} px between the eyes); "
                        "expect a coarse fit and a blurry texture. Use a closer or larger photo.")
    if fit.rmse_iod > POOR_FIT_IOD:
        warnings.append(f"The head fits {name} poorly (landmark error {fit.rmse_iod:.0%} of the eye distance): "
                        "part of the face may be hidden (hands, hair, glasses) or the face is strongly turned.")
    return warnings
