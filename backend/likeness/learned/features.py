"""What the expression encoder reads from one face: MediaPipe's landmarks and blendshape scores, as one vector.

NumPy only (no torch), so the training-data generator, the trainer and the backend compute it identically.

- The 478 landmarks (468 face points and 10 iris points) in 3D: pixels x right, y up, and MediaPipe's relative
  depth toward the camera, in the same pixel scale.
- They are aligned to a template by a similarity transform (Umeyama on the 468 face points), which removes the
  head's position, size and rotation; what is left, aligned minus template, is shape and expression, in units of
  the template (the inter-ocular distance is about 1).
- The rotation of that alignment (9 numbers, head frame → image frame) comes along, so the encoder can learn
  how MediaPipe's points behave when the head is turned.
- The 52 ARKit scores of MediaPipe's Face Landmarker in :data:`likeness.arkit.ARKIT_52` order, and a last number
  that says whether there were scores (0 and zeros when the model is not installed or found no face).
- The face's pixels (:func:`face_crop`): the photo resampled so that MediaPipe's landmarks land on a frontal
  template's (a 2D similarity: position, size and in-plane rotation removed), :data:`CROP` pixels a side with
  :data:`CROP_SCALE` pixels per inter-ocular distance; the network reads its centre :data:`CROP_INNER` pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..arkit import ARKIT_52
from ..model.geometry import similarity_transform

LANDMARKS = 478
FACE_POINTS = 468
FEATURES = LANDMARKS * 3 + 9 + len(ARKIT_52) + 1
#: Where each part lies in the feature vector: the aligned landmarks minus the template (478 × 3, x y z per point),
#: the alignment's rotation (3 × 3, row-major) and MediaPipe's 52 scores with the flag that says there were scores.
SHAPE_COLS = slice(0, LANDMARKS * 3)
ROTATION_COLS = slice(LANDMARKS * 3, LANDMARKS * 3 + 9)
SCORE_COLS = slice(LANDMARKS * 3 + 9, FEATURES)
CROP = 128  # stored crop side (px); training takes random CROP_INNER windows of it, inference the centre
CROP_INNER = 112
CROP_SCALE = 54.0  # crop pixels per inter-ocular distance
CROP_CENTRE_Y = 0.0  # the crop's centre lies this many inter-ocular distances below the template's centre


def landmarks_3d(points_px: np.ndarray, depth_px: np.ndarray) -> np.ndarray:
    """(478,3) points, x right, y up, z toward the camera, in pixels."""
    return np.stack([points_px[:LANDMARKS, 0], -points_px[:LANDMARKS, 1], -depth_px[:LANDMARKS]], -1)


def align(points: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (478,3) mapped onto ``template``'s frame and scale; and the rotation (3,3) template → image."""
    scale, rot, offset = similarity_transform(template[:FACE_POINTS], points[:FACE_POINTS])
    return (points - offset) @ rot / scale, rot


def score_vector(scores: dict[str, float] | None) -> np.ndarray:
    """(53,) MediaPipe's scores in ARKIT_52 order then a 1 (0s throughout without scores)."""
    out = np.zeros(len(ARKIT_52) + 1, np.float32)
    if scores:
        out[:-1] = [scores.get(name, 0.0) for name in ARKIT_52]
        out[-1] = 1.0
    return out


def encoder_features(points_px: np.ndarray, depth_px: np.ndarray, scores: np.ndarray,
                     template: np.ndarray) -> np.ndarray:
    """(FEATURES,) float32 for one face; ``scores`` from :func:`score_vector`."""
    aligned, rot = align(landmarks_3d(points_px, depth_px), template)
    return np.concatenate([(aligned - template).ravel(), rot.ravel(), scores]).astype(np.float32)


def mean_template(points: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Generalised Procrustes mean (478,3) of many faces' landmarks (N,478,3), inter-ocular distance 1."""
    template = points[0].copy()
    for _ in range(rounds):
        template = np.mean([align(p, template)[0] for p in points], axis=0)
        template -= template[:FACE_POINTS].mean(0)
        template /= np.linalg.norm(template[33] - template[263])  # outer eye corners
    return template


def crop_template(face_points: np.ndarray) -> np.ndarray:
    """(468,2) frontal 2D template from the head model's 468 MediaPipe points (m, head frame): x right, y down,
    centred, inter-ocular distance 1."""
    xy = face_points[:FACE_POINTS, :2] * [1.0, -1.0]
    xy = xy - xy.mean(0)
    return xy / np.linalg.norm(xy[33] - xy[263])


def face_crop(rgb: np.ndarray, points_px: np.ndarray, template: np.ndarray, size: int = CROP) -> np.ndarray:
    """(size, size, 3) uint8: the face of ``rgb`` (H,W,3 uint8) resampled onto ``template`` (:func:`crop_template`)
    by the 2D similarity that best maps the template onto MediaPipe's 468 face points (pixels)."""
    scale, rot, offset = similarity_transform(template, points_px[:FACE_POINTS, :2])
    # crop pixel (u, v) → template point ((u, v) − centre) / CROP_SCALE + (0, CROP_CENTRE_Y) → photo pixel
    a = scale * rot / CROP_SCALE
    centre = np.array([size / 2.0, size / 2.0])
    shift = offset + scale * rot @ np.array([0.0, CROP_CENTRE_Y]) - a @ centre
    image = Image.fromarray(np.ascontiguousarray(rgb))
    # photo pixels per crop pixel: faces larger than any in training (3× or more) are box-filtered first, so
    # that bilinear sampling does not alias them
    shrink = int(scale / CROP_SCALE)
    if shrink >= 3:
        image = image.reduce(shrink)
        a, shift = a / shrink, (shift + 0.5) / shrink - 0.5
    coeffs = (a[0, 0], a[0, 1], shift[0], a[1, 0], a[1, 1], shift[1])
    return np.asarray(image.transform((size, size), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR))

