"""Where the eyes look: gaze angles from MediaPipe's iris landmarks and the fitted eyeballs.

Each iris centre (landmark 468: the subject's right eye, 473: the left) is cast as a ray from the camera onto the
fitted eyeball sphere; the direction from the sphere's centre to that point, compared with the eyeball's rest
direction, gives the gaze. Angles are in degrees in the head frame: ``yaw`` > 0 toward the subject's left (+X),
``pitch`` > 0 up.

ARKit's eyeLook* weights are the same gaze as lid poses: :func:`gaze_weights` turns angles into them with
full weight at :data:`FULL_YAW_DEG` sideways and :data:`FULL_PITCH_DEG` up or down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arkit import EYE_LOOK_PITCH_DEG as FULL_PITCH_DEG
from ..arkit import EYE_LOOK_YAW_DEG as FULL_YAW_DEG
from ..model.camera import Camera
from ..model.headmodel import HeadModel

#: MediaPipe iris-centre landmarks, by the subject's side.
IRIS_CENTRE = {"R": 468, "L": 473}


@dataclass(frozen=True)
class Eyeball:
    """One eyeball of a fitted head in the head frame: centre (m), radius (m), rest gaze direction (unit)."""

    centre: np.ndarray
    radius: float
    rest: np.ndarray


def eyeballs(model: HeadModel, identity: np.ndarray) -> dict[str, Eyeball]:
    """The two eyeballs ("L", "R") of the head with these identity coefficients (head frame, metres)."""
    out = {}
    for side, (start, stop) in model.eyeball_vertices.items():
        ball = model.neutral[start:stop] + np.tensordot(identity, model.identity_basis[:len(identity), start:stop], 1)
        centre = ball.mean(0)
        radius = float(np.linalg.norm(ball - centre, axis=1).mean())
        apex = ball[np.argmax(ball[:, 2])]  # the cornea's front points along the rest gaze
        rest = (apex - centre) / np.linalg.norm(apex - centre)
        out[side] = Eyeball(centre, radius, rest)
    return out


def _angles(direction: np.ndarray) -> tuple[float, float]:
    yaw = np.degrees(np.arctan2(direction[0], direction[2]))
    pitch = np.degrees(np.arctan2(direction[1], np.hypot(direction[0], direction[2])))
    return float(yaw), float(pitch)


def gaze_angles(points_px: np.ndarray, camera: Camera, rotation: np.ndarray, translation: np.ndarray,
                balls: dict[str, Eyeball]) -> dict[str, tuple[float, float]]:
    """(yaw, pitch) in degrees per eye from the iris landmarks; see the module docstring for signs."""
    cx, cy = camera.principal_point
    out = {}
    for side, ball in balls.items():
        x, y = points_px[IRIS_CENTRE[side]]
        ray = np.array([(x - cx) / camera.focal_px, -(y - cy) / camera.focal_px, -1.0])
        ray /= np.linalg.norm(ray)
        centre = rotation @ ball.centre + translation
        along = ray @ centre
        disc = along ** 2 - centre @ centre + ball.radius ** 2
        hit = ray * (along - np.sqrt(max(disc, 0.0)))  # nearest hit, or the ray's closest point if it misses
        direction = rotation.T @ (hit - centre)
        direction /= np.linalg.norm(direction)
        yaw, pitch = _angles(direction)
        rest_yaw, rest_pitch = _angles(ball.rest)
        out[side] = (yaw - rest_yaw, pitch - rest_pitch)
    return out


def gaze_weights(angles: dict[str, tuple[float, float]], expression_names: tuple[str, ...]) -> np.ndarray:
    """eyeLook* weights (E,) for the given gaze angles, NaN for every other expression."""
    out = np.full(len(expression_names), np.nan)
    index = {name: i for i, name in enumerate(expression_names)}
    for side, (yaw, pitch) in angles.items():
        toward_left = yaw / FULL_YAW_DEG  # > 0: toward the subject's left = outward for the left eye
        outward = toward_left if side == "L" else -toward_left
        values = {"Out": max(outward, 0.0), "In": max(-outward, 0.0),
                  "Up": max(pitch / FULL_PITCH_DEG, 0.0), "Down": max(-pitch / FULL_PITCH_DEG, 0.0)}
        for direction, value in values.items():
            name = f"eyeLook{direction}_{side}"
            if name in index:
                out[index[name]] = min(value, 1.0)
    return out


def eye_turns(weights: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Eyeball rotation (yaw, pitch) in degrees per eye ("L", "R") that eyeLook* weights (by name) stand for, in
    this module's convention (full weight at FULL_YAW_DEG sideways, FULL_PITCH_DEG up or down; yaw > 0 toward
    the subject's left, pitch > 0 up). Eyes that do not turn are left out. ICT's eyeLook* shapes move only the
    lids, so a renderer turns the eyeballs by these angles."""
    out = {}
    for side in "LR":
        outward = weights.get(f"eyeLookOut_{side}", 0.0) - weights.get(f"eyeLookIn_{side}", 0.0)
        yaw = (outward if side == "L" else -outward) * FULL_YAW_DEG
        pitch = (weights.get(f"eyeLookUp_{side}", 0.0) - weights.get(f"eyeLookDown_{side}", 0.0)) * FULL_PITCH_DEG
        if yaw or pitch:
            out[side] = (yaw, pitch)
    return out


def turn_eyes(model: HeadModel, verts: np.ndarray, turns: dict[str, tuple[float, float]]) -> np.ndarray:
    """``verts`` (V,3, head frame, m) with each eyeball turned about its centre by ``turns`` (see
    :func:`eye_turns`); changed in place and returned."""
    from ..model.geometry import rodrigues

    for side, (yaw, pitch) in turns.items():
        start, stop = model.eyeball_vertices[side]
        centre = verts[start:stop].mean(0)
        rot = rodrigues(np.radians([0.0, yaw, 0.0])) @ rodrigues(np.radians([-pitch, 0.0, 0.0]))
        verts[start:stop] = (verts[start:stop] - centre) @ rot.T + centre
    return verts
