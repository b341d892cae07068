"""Face landmarks from MediaPipe Face Mesh (478 points with irises), kept warm between photos."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import NoFaceFound

#: Outer eye corners in MediaPipe's numbering (subject's right, subject's left).
EYE_OUTER = (33, 263)


@dataclass(frozen=True)
class FaceLandmarks:
    """Landmarks of one face in one photo.

    ``points_px`` is (478,2) in pixels (x right, y down); ``depth_px`` (478,) is MediaPipe's relative depth in
    the same pixel scale (smaller = nearer the camera), good for a first pose estimate.
    """

    points_px: np.ndarray
    depth_px: np.ndarray
    box_px: tuple[float, float, float, float]
    warnings: list[str] = field(default_factory=list)

    @property
    def interocular_px(self) -> float:
        return interocular(self.points_px)


def interocular(points_px: np.ndarray) -> float:
    """Distance in pixels between the outer eye corners (MediaPipe landmarks 33 and 263)."""
    return float(np.linalg.norm(points_px[EYE_OUTER[0]] - points_px[EYE_OUTER[1]]))


class LandmarkDetector:
    """MediaPipe Face Mesh with refined (iris) landmarks. Not thread-safe.

    Static-image mode by default; ``video=True`` tracks the face from frame to frame (frames in order, one
    detector per video), which skips the face detector on most frames.
    """

    def __init__(self, max_faces: int = 4, video: bool = False) -> None:
        import mediapipe as mp  # heavy import (~1 s): only when landmarks are needed

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video, refine_landmarks=True, max_num_faces=max_faces,
            min_detection_confidence=0.5)

    def detect(self, rgb: np.ndarray, name: str = "the photo") -> FaceLandmarks:
        """Landmarks of the largest face in ``rgb`` (H,W,3 uint8); warns when there are several."""
        h, w = rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = result.multi_face_landmarks or []
        if not faces:
            raise NoFaceFound(f"No face was found in {name}.",
                              "Use a photo where the whole face is visible, facing the camera, at least about "
                              "100 pixels wide and not tiny in the frame (crop around the face if it is).")
        candidates = []
        for face in faces:
            xyz = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], np.float64)
            lo, hi = xyz[:, :2].min(0), xyz[:, :2].max(0)
            candidates.append((float(np.prod(hi - lo)), xyz, (lo[0], lo[1], hi[0], hi[1])))
        candidates.sort(key=lambda c: -c[0])
        _, xyz, box = candidates[0]
        warnings = []
        if len(faces) > 1:
            warnings.append(f"{len(faces)} faces were found in {name}; the largest was used.")
        return FaceLandmarks(points_px=xyz[:, :2], depth_px=xyz[:, 2], box_px=tuple(float(v) for v in box),
                             warnings=warnings)

    def close(self) -> None:
        self._mesh.close()
