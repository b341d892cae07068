"""Is a photo within what the fit handles? A per-photo confidence in [0, 1] and human-readable warnings.

The confidence multiplies three factors, each 1 when all is well:

- landmark fit: how far the fitted head's landmarks are from MediaPipe's, relative to the eye distance
  (1 up to 2 %, falling to about 0.1 at 6 %);
- face size: the distance between the outer eye corners in pixels (1 from 75 px, 0 at 25 px);
- head pose: 1 up to 30° of yaw and 20° of pitch, 0 at 75° / 60° (beyond, the far side is guessed).
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..model.camera import Camera
from .fit import FitSettings, LandmarkBasis, Observation, PhotoFit, fit_landmarks
from ..model.geometry import head_angles
from .images import Photo
from .landmarks import FaceLandmarks

MAX_YAW_DEG = 45.0
MIN_EYE_DISTANCE_PX = 40.0
POOR_FIT_IOD = 0.05
#: Distance between the identity coefficients of two photos fitted alone, beyond which they look like different
#: people. On the dev photos (65 MediaPipe fits) same-person pairs reach at most 4.8 (95 % below 3.9), pairs of
#: different people have a median of 5.3: a warning at 5.0 catches about half of the mixed pairs, never a same pair.
SAME_PERSON_MAX_DISTANCE = 5.0


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


def job_warnings(basis: LandmarkBasis, settings: FitSettings, photos: list[Photo], found: list[FaceLandmarks],
                 cameras: list[Camera]) -> list[list[str]]:
    """Warnings about the job as a whole, per photo: the same picture twice, photos of different people.

    A copy of an earlier photo is named (it only doubles that photo's weight). For the identity check each photo
    is fitted alone (landmarks only, about 0.13 s a photo) and a photo whose identity is far from the other
    photos' (median distance above :data:`SAME_PERSON_MAX_DISTANCE`) gets a warning naming the farthest one.
    """
    warnings: list[list[str]] = [[] for _ in photos]
    first: dict[str, int] = {}
    for k, photo in enumerate(photos):
        digest = hashlib.sha1(photo.rgb.tobytes()).hexdigest()
        if digest in first:
            warnings[k].append(f"{photo.path.name} is the same picture as photo {first[digest] + 1} "
                               f"({photos[first[digest]].path.name}); a copy adds nothing. Remove one of them.")
        first.setdefault(digest, k)
    if len(first) < 2:
        return warnings
    identities = np.array([fit_landmarks(basis, [Observation(lm.points_px, lm.depth_px, cam)], settings).identity
                           for lm, cam in zip(found, cameras)])
    distance = np.linalg.norm(identities[:, None] - identities[None], axis=-1)
    np.fill_diagonal(distance, np.nan)
    named: set[tuple[int, int]] = set()
    for k, row in enumerate(distance):
        other = int(np.nanargmax(row))
        if np.nanmedian(row) > SAME_PERSON_MAX_DISTANCE and (other, k) not in named:
            named.add((k, other))
            warnings[k].append(f"{photos[k].path.name} and {photos[other].path.name} look like different people "
                               f"(face-shape distance {row[other]:.1f}, same person ≤ {SAME_PERSON_MAX_DISTANCE:g}); "
                               "all photos of a job should show the same person.")
    return warnings
