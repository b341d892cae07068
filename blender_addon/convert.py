"""Pure NumPy conversions from bundle conventions to Blender's (no bpy).

- Head frame (bundle): metres, +Y up, +Z out of the face, +X the subject's left (glTF convention).
- Blender world: metres, +Z up, the face looks toward -Y: ``(x, y, z) -> (x, -z, y)``.
- Camera frame (bundle) is OpenGL style (+X right, +Y up, looking along -Z), which is exactly the local frame
  of a Blender camera object, so a camera's world matrix is ``HEAD_TO_BLENDER @ inverse(model_to_camera)``.
"""

from __future__ import annotations

import numpy as np

#: 4x4 transform from head-frame coordinates to Blender world coordinates (a rotation of +90 deg about X).
HEAD_TO_BLENDER = np.array(
    [[1.0, 0.0, 0.0, 0.0],
     [0.0, 0.0, -1.0, 0.0],
     [0.0, 1.0, 0.0, 0.0],
     [0.0, 0.0, 0.0, 1.0]],
)

#: Sensor width (mm) given to Blender cameras; with sensor fit AUTO it spans the photo's larger side.
SENSOR_WIDTH_MM = 36.0


def points_to_blender(points: np.ndarray) -> np.ndarray:
    """Head-frame points or offsets ``(..., 3)`` to Blender axes, float32, same shape."""
    points = np.asarray(points, dtype=np.float32)
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)


def polygon_layout(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blender polygon arrays from ``faces (F, 4)`` with -1 padding for triangles.

    Returns ``(loop_start (F,), loop_vertex_index (L,))`` as int32, L = corner count; Blender derives each
    polygon's corner count from consecutive ``loop_start`` values.
    """
    corners = faces != -1
    loop_start = np.zeros(len(faces), dtype=np.int32)
    np.cumsum(corners.sum(axis=1)[:-1], out=loop_start[1:])
    return loop_start, faces[corners].astype(np.int32)


def corner_uvs(faces_uv: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Per-corner UVs ``(L, 2)`` float32 in polygon-corner order (the order of :func:`polygon_layout`)."""
    return uv[faces_uv[faces_uv != -1]].astype(np.float32)


def camera_world_matrix(model_to_camera: np.ndarray) -> np.ndarray:
    """4x4 world matrix of a Blender camera object seeing the head as in the photo."""
    return HEAD_TO_BLENDER @ np.linalg.inv(np.asarray(model_to_camera, dtype=np.float64))


def camera_lens_mm(focal_px: float, width: int, height: int, sensor_width_mm: float = SENSOR_WIDTH_MM) -> float:
    """Focal length in mm for a sensor of ``sensor_width_mm`` spanning the photo's larger side (fit AUTO)."""
    return focal_px * sensor_width_mm / max(width, height)


def camera_shift(principal_point_px: tuple[float, float], width: int, height: int) -> tuple[float, float]:
    """Blender ``shift_x, shift_y`` (fractions of the larger side) placing the optical axis at the principal point.

    Pixels have their origin at the top-left with y down; Blender's shift_y moves the frame up.
    """
    cx, cy = principal_point_px
    size = max(width, height)
    return (width / 2.0 - cx) / size, (cy - height / 2.0) / size
