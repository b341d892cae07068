import numpy as np
import pytest

from likeness.correspondence import _ANCHORS, build_correspondence, load_table
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


def test_generator_reproduces_the_committed_table(ict):
    canonical = SHARED / "models" / "mediapipe_canonical" / "canonical_face_model.obj"
    if not canonical.is_file():
        pytest.skip("MediaPipe canonical mesh not in ../shared")
    fresh = build_correspondence(ict, canonical)
    committed = load_table()
    same = (fresh.vertex_ids == committed.vertex_ids).all(1)
    assert same.mean() > 0.99
    np.testing.assert_allclose(fresh.points(ict.neutral), committed.points(ict.neutral), atol=1e-5)
