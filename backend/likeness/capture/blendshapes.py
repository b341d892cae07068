"""Learned expression evidence: the 52 ARKit blendshape scores of MediaPipe's Face Landmarker.

The model is optional (Apache-2.0, ``likeness models install mediapipe-blendshapes``). When it is installed the
fit uses its scores as soft observations of the expression weights (see :mod:`likeness.capture.fit`); without it the
fit relies on the landmarks alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..arkit import ict_sources


def find_task() -> Path | None:
    """The Face Landmarker bundle: ``$LIKENESS_MEDIAPIPE_TASK``, else the installed copy, else None."""
    from ..service.models import SPECS

    env = os.environ.get("LIKENESS_MEDIAPIPE_TASK")
    for candidate in (Path(env) if env else None, SPECS["mediapipe-blendshapes"].path()):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def model_name(arkit: str) -> tuple[str, ...]:
    """ICT name(s) of an ARKit blendshape: ``eyeBlinkLeft`` → ``eyeBlink_L``; ``cheekPuff`` → both halves."""
    return ict_sources(arkit)


def to_weights(scores: dict[str, float], expression_names: tuple[str, ...]) -> np.ndarray:
    """Scores by ARKit name → (E,) array in the model's expression order; NaN where there is no score."""
    out = np.full(len(expression_names), np.nan)
    index = {name: i for i, name in enumerate(expression_names)}
    for arkit, score in scores.items():
        for name in model_name(arkit):
            if name in index:
                out[index[name]] = score
    return out


class BlendshapeScorer:
    """MediaPipe Face Landmarker (Tasks API, image mode, one face). Not thread-safe."""

    def __init__(self, task: Path) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(task)), running_mode=vision.RunningMode.IMAGE,
            num_faces=1, output_face_blendshapes=True)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def scores(self, rgb: np.ndarray, box_px: tuple[float, float, float, float]) -> dict[str, float] | None:
        """ARKit scores for the face inside ``box_px`` (x0, y0, x1, y1), or None when it finds no face there."""
        import mediapipe as mp

        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box_px
        pad = 0.6 * max(x1 - x0, y1 - y0)  # the detector wants context around the face
        c0, r0 = int(max(x0 - pad, 0)), int(max(y0 - pad, 0))
        c1, r1 = int(min(x1 + pad, w)), int(min(y1 + pad, h))
        crop = np.ascontiguousarray(rgb[r0:r1, c0:c1])
        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=crop))
        if not result.face_blendshapes:
            return None
        return {c.category_name: float(c.score) for c in result.face_blendshapes[0] if c.category_name != "_neutral"}
