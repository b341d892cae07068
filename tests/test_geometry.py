import numpy as np
import pytest

from likeness.model.camera import Camera
from likeness.model.geometry import (closest_points_on_triangles, head_angles, head_rotation, rodrigues,
                               similarity_transform)


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, -10, 5), (-45, 20, -15), (10, 60, 80)])
def test_head_angles_round_trip(angles):
    np.testing.assert_allclose(head_angles(head_rotation(*angles)), angles, atol=1e-9)


def test_pose_sign_conventions():
    """yaw > 0: nose toward the image's right; pitch > 0: nose down; roll > 0: clockwise in the image."""
    cam = Camera(1000.0, (500.0, 500.0), (1000, 1000))
    nose, top = np.array([0, 0, 0.1]), np.array([0, 0.1, 0])
    t = np.array([0, 0, -1.0])

    def px(rot, p):
        return cam.project((rot @ p + t)[None])[0][0]

    assert px(head_rotation(20, 0, 0), nose)[0] > 500
    assert px(head_rotation(0, 20, 0), nose)[1] > 500
    top_px = px(head_rotation(0, 0, 20), top)
    assert top_px[0] > 500 and top_px[1] < 500  # the top of the head moves right: clockwise


def test_rodrigues_turns_about_its_axis():
    rot = rodrigues(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(rot @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-12)
    rvec = np.array([0.3, -0.2, 0.9])
    np.testing.assert_allclose(rodrigues(rvec) @ rvec, rvec, atol=1e-12)  # the axis stays put
    np.testing.assert_allclose(rodrigues(rvec) @ rodrigues(-rvec), np.eye(3), atol=1e-12)


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    rot = rodrigues(np.array([0.2, 0.5, -0.1]))
    dst = 2.5 * src @ rot.T + [1, 2, 3]
    s, r, t = similarity_transform(src, dst)
    assert s == pytest.approx(2.5) and np.allclose(r, rot) and np.allclose(t, [1, 2, 3])


def test_closest_point_on_triangles():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 0], [6, 5, 0], [5, 6, 0]], float)
    tris = np.array([[0, 1, 2], [3, 4, 5]])
    tri, bary = closest_points_on_triangles(np.array([[0.2, 0.2, 1.0], [7, 7, 0], [2, -1, 0]]), verts, tris)
    assert tri.tolist() == [0, 1, 0]
    points = np.einsum("nk,nkd->nd", bary, verts[tris[tri]])
    np.testing.assert_allclose(points, [[0.2, 0.2, 0], [5.5, 5.5, 0], [1, 0, 0]], atol=1e-9)
