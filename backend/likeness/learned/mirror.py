"""A training face seen in a mirror: the same example with the subject's left and right swapped.

Training shows each face as rendered or mirrored (half and half), so that a one-sided expression is learned as
well on either side and the network cannot lean to one. Everything the encoder reads is mirrored consistently:

- the landmark features: each landmark takes its mirror twin's place, reflected across the landmark template's
  plane of symmetry (found from the template itself, :func:`symmetry`);
- the alignment's rotation (template → image): ``R' = F R Mᵀ``, with ``F`` the image's reflection (x → −x) and
  ``M`` the template's;
- MediaPipe's blendshape scores and the true expression weights: ``…Left`` ↔ ``…Right``, ``_L`` ↔ ``_R``,
  ``jawLeft`` ↔ ``jawRight``, ``mouthLeft`` ↔ ``mouthRight``;
- the angles: yaw and roll change sign, pitch stays;
- the face crop: flipped left to right (the crop template is the symmetric model head's).

NumPy only; the trainer applies the same constants in torch.
"""

from __future__ import annotations

import numpy as np

from ..arkit import ARKIT_52
from ..model.geometry import similarity_transform
from .features import FACE_POINTS, LANDMARKS, ROTATION_COLS, SCORE_COLS, SHAPE_COLS

IMAGE_FLIP = np.diag([-1.0, 1.0, 1.0])
#: pairs of names that swap although they do not end in a side
_SWAPPED = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}


def twin(name: str) -> str:
    """The name of a shape's mirror image (itself for symmetric shapes)."""
    if name in _SWAPPED:
        return _SWAPPED[name]
    for a, b in (("Left", "Right"), ("Right", "Left"), ("_L", "_R"), ("_R", "_L")):
        if name.endswith(a):
            return name[:-len(a)] + b
    return name


def twins(names) -> np.ndarray:
    """(len(names),) index of each name's mirror twin within ``names``."""
    index = {n: i for i, n in enumerate(names)}
    return np.array([index.get(twin(n), i) for i, n in enumerate(names)])


def symmetry(template: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The template's mirror map: (perm (478,), M (3,3), t (3,)) with ``M @ template[i] + t ≈ template[perm[i]]``
    (det M = −1). Starts from the plane half-way between the outer eye corners (landmarks 33 and 263), then
    alternates nearest-twin matching and a least-squares fit of the reflection."""
    face = template[:FACE_POINTS]
    axis = template[263] - template[33]
    axis /= np.linalg.norm(axis)
    centre = face.mean(0)
    mirrored = face - 2.0 * np.outer((face - centre) @ axis, axis)
    for _ in range(rounds):
        perm = np.linalg.norm(mirrored[:, None] - face[None], axis=-1).argmin(1)
        scale, rot, shift = similarity_transform(face @ IMAGE_FLIP, face[perm])
        reflect = scale * rot @ IMAGE_FLIP
        mirrored = face @ reflect.T + shift
    iris = template[FACE_POINTS:LANDMARKS]
    iris_perm = np.linalg.norm((iris @ reflect.T + shift)[:, None] - iris[None], axis=-1).argmin(1)
    return np.concatenate([perm, FACE_POINTS + iris_perm]), reflect, shift


class Mirror:
    """The mirror constants for one landmark template and one list of expression names."""

    def __init__(self, template: np.ndarray, expression_names) -> None:
        self.template = np.asarray(template, np.float64)
        self.perm, self.reflect, self.shift = symmetry(self.template)
        self.scores = np.concatenate([twins(ARKIT_52), [len(ARKIT_52)]])  # the last score is the "had scores" flag
        self.expression = twins(tuple(expression_names))

    def features(self, x: np.ndarray) -> np.ndarray:
        """(B, FEATURES) → the mirrored faces' features (:func:`likeness.learned.features.encoder_features`)."""
        aligned = x[:, SHAPE_COLS].reshape(-1, LANDMARKS, 3) + self.template
        points = aligned[:, self.perm] @ self.reflect.T + self.shift - self.template
        rot = IMAGE_FLIP @ x[:, ROTATION_COLS].reshape(-1, 3, 3) @ np.linalg.inv(self.reflect)
        scores = x[:, SCORE_COLS][:, self.scores]
        return np.concatenate([points.reshape(len(x), -1), rot.reshape(len(x), 9), scores], 1).astype(x.dtype)

    def weights(self, w: np.ndarray) -> np.ndarray:
        """(B, E) expression weights of the mirrored faces."""
        return w[:, self.expression]

    @staticmethod
    def angles(a: np.ndarray) -> np.ndarray:
        """(B, 3) yaw, pitch, roll of the mirrored faces."""
        return a * np.array([-1.0, 1.0, -1.0], a.dtype)

    @staticmethod
    def crops(c: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) crops of the mirrored faces."""
        return c[:, :, ::-1]
