import numpy as np
import pytest

from likeness.model.correspondence import _ANCHORS, FACE_OVAL, build_correspondence, load_table, table_from_points
from conftest import SHARED


def test_table_is_well_formed(ict):
    corr = load_table()
    assert corr.vertex_ids.shape == (468, 3) and corr.weights.shape == (468, 3)
    assert np.allclose(corr.weights.sum(1), 1) and corr.weights.min() >= -1e-6
    assert corr.vertex_ids.max() < ict.face_vertex_count  # every landmark lies on the face region


def test_anchor_landmarks_land_on_their_features(ict):
    points = load_table().points(ict.neutral)
    errors = [np.linalg.norm(points[mp] - ict.neutral[ict.landmarks_68[ibug]]) for mp, ibug in _ANCHORS.items()]
    assert np.median(errors) < 0.003 and max(errors) < 0.006  # metres


#: Landmarks on sharp, unambiguous features (eye corners, nose tip, mouth corners): calibration on renders moves
#: them by a millimetre or two at most, so a bigger move means a broken calibration or a table for another model.
STABLE = (33, 133, 362, 263, 1, 4, 61, 291)


def test_committed_table_stays_near_the_geometric_one(ict):
    """The committed table is the geometric one calibrated on renders (bench/quality/calibrate_correspondence.py):
    near the generator's on stable features, millimetres away elsewhere (the face oval, a silhouette, moves more)."""
    canonical = SHARED / "models" / "mediapipe_canonical" / "canonical_face_model.obj"
    if not canonical.is_file():
        pytest.skip("MediaPipe canonical mesh not in ../shared")
    neutral = ict.neutral.astype(np.float64)
    shift = np.linalg.norm(build_correspondence(ict, canonical).points(neutral) - load_table().points(neutral), axis=1)
    assert shift[list(STABLE)].max() < 0.004  # metres
    inner = np.setdiff1d(np.arange(468), FACE_OVAL)
    assert np.median(shift[inner]) < 0.004 and shift[inner].max() < 0.015
    assert shift.max() < 0.04


def test_table_from_points_puts_landmarks_on_the_face_surface(ict):
    committed = load_table()
    neutral = ict.neutral.astype(np.float64)
    points = committed.points(neutral)
    again = table_from_points(ict, points)
    assert again.vertex_ids.max() < ict.face_vertex_count and np.allclose(again.weights.sum(1), 1)
    np.testing.assert_allclose(again.points(neutral), points, atol=1e-6)
    a, b, c = (neutral[committed.vertex_ids[:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    lifted = table_from_points(ict, points + 0.001 * normal)  # 1 mm off the surface: back onto the same point
    assert np.median(np.linalg.norm(lifted.points(neutral) - points, axis=1)) < 1e-5
