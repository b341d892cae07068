import numpy as np

from likeness.capture.checks import photo_confidence, photo_warnings
from likeness.capture.fit import PhotoFit
from likeness.model.geometry import head_rotation
from likeness.capture.landmarks import FaceLandmarks


def landmarks(eye_distance_px: float) -> FaceLandmarks:
    points = np.zeros((478, 2))
    points[263, 0] = eye_distance_px  # outer eye corners 33 and 263
    return FaceLandmarks(points_px=points, depth_px=np.zeros(478), box_px=(0, 0, 1, 1))


def fit(yaw: float = 0.0, rmse_iod: float = 0.015) -> PhotoFit:
    return PhotoFit(head_rotation(yaw, 0, 0), np.array([0, 0, -0.6]), np.zeros(53), rmse_iod=rmse_iod)


def test_a_good_frontal_photo_is_confident_and_quiet():
    assert photo_confidence(fit(), landmarks(120)) > 0.95
    assert photo_warnings("a.jpg", fit(), landmarks(120)) == []


def test_profile_tiny_and_occluded_photos_warn_and_lose_confidence():
    good = photo_confidence(fit(), landmarks(120))
    cases = {"turned": (fit(yaw=60), landmarks(120)), "small": (fit(), landmarks(30)),
             "occluded": (fit(rmse_iod=0.09), landmarks(120))}
    for what, (f, lm) in cases.items():
        warnings = photo_warnings("a.jpg", f, lm)
        assert len(warnings) == 1 and "a.jpg" in warnings[0], what
        assert photo_confidence(f, lm) < 0.5 * good, what
    assert "60°" in photo_warnings("a.jpg", fit(yaw=-60), landmarks(120))[0]
