"""Person vs background: MediaPipe's selfie segmentation, which ships in the ``mediapipe`` wheel (used by
:mod:`likeness.capture.segment`)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np


class PersonSegmenter:
    """MediaPipe's selfie segmentation (tasks ImageSegmenter, still-image mode: no state between photos).

    :meth:`person` returns a (h,w) float32 probability of "person" or None when the model cannot run; the model is
    loaded on first use, and once it has failed twice in a row the landmarks fallback is used from then on.
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        self._path = model_path
        self._segmenter = None
        self._failed = False
        self.error: str | None = None  # why the model could not run, the last time it could not

    @staticmethod
    def default_model() -> Path | None:
        try:
            import mediapipe
        except ImportError:
            return None
        path = Path(mediapipe.__file__).parent / "modules" / "selfie_segmentation" / "selfie_segmentation.tflite"
        return path if path.is_file() else None

    def person(self, rgb: np.ndarray) -> np.ndarray | None:
        """Person probability (h,w) float32 of an RGB uint8 image, or None (see :attr:`error`).

        A run that fails is tried once more with a freshly loaded model, with torch's process-wide flush-denormal
        mode off where torch is loaded (SMIRK turns it on, and XNNPACK then cannot prepare this model; once
        prepared it runs either way), turned back on after."""
        if self._failed:  # the retry failed before: the landmarks fallback from then on
            return None
        for attempt in range(2):
            torch = sys.modules.get("torch") if attempt else None
            if torch is not None:
                torch.set_flush_denormal(False)
            try:
                segmenter = self._load()
                if segmenter is not None:
                    import mediapipe as mp

                    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
                    mask = segmenter.segment(image).confidence_masks[0].numpy_view()
                    return np.array(mask, np.float32).reshape(rgb.shape[:2])
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.close()
            finally:
                if torch is not None:
                    torch.set_flush_denormal(True)
            self._failed = False  # the retry loads afresh
        self._failed = True
        return None

    def _load(self):
        if self._segmenter is None and not self._failed:
            try:
                from mediapipe.tasks.python import BaseOptions, vision

                path = self._path or self.default_model()
                if path is None:
                    raise FileNotFoundError("selfie_segmentation.tflite")
                options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                                       output_confidence_masks=True, output_category_mask=False)
                with warnings.catch_warnings():  # a protobuf deprecation notice inside MediaPipe
                    warnings.simplefilter("ignore", UserWarning)
                    self._segmenter = vision.ImageSegmenter.create_from_options(options)
            except Exception as exc:  # no mediapipe, a missing or broken model: fall back to the landmarks
                self._failed, self.error = True, f"{type(exc).__name__}: {exc}"
        return self._segmenter

    def close(self) -> None:
        if self._segmenter is not None:
            try:
                self._segmenter.close()
            except Exception:  # a segmenter whose graph failed may refuse to close cleanly
                pass
            self._segmenter = None
