"""The expression-ceiling bench's maths (bench/quality/expression_ceiling.py): the points' Jacobian and the motion
left once another identity and a small head motion have explained what they can."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "quality"))
import expression_ceiling as ceiling  # noqa: E402

from likeness.learned.dataset import true_points_px  # noqa: E402
from likeness.model.camera import Camera  # noqa: E402
from likeness.model.correspondence import load_table  # noqa: E402


def _scene(ict):
    corr = load_table()
    rotation = Rotation.from_euler("yxz", [20, -8, 5], degrees=True).as_matrix()
    translation = np.array([0.01, -0.02, -0.6])
    camera = Camera(900.0, (320.0, 240.0), (640, 480))
    ids = corr.basis(ict.identity_basis[:ceiling.IDENTITY_MODES].astype(np.float64))
    return corr, rotation, translation, camera, ids


def test_jacobian_matches_finite_differences(ict):
    corr, rotation, translation, camera, ids = _scene(ict)
    verts = ict.vertices(np.zeros(ict.identity_basis.shape[0]), np.zeros(len(ict.expression_names)))
    points = corr.points(verts)
    jac = ceiling.point_jacobian(points, ids, rotation, translation, camera)
    assert jac.shape == (468 * 2, ceiling.IDENTITY_MODES + 6)

    def px(p, turn=np.zeros(3), move=np.zeros(3)):
        turned = Rotation.from_rotvec(turn).as_matrix() @ rotation
        return camera.project(p @ turned.T + translation + move)[0]
    base = px(points)
    h = 1e-3
    for k in (0, 7, 59):
        numeric = (px(points + h * ids[k]) - base).ravel() / h
        assert np.allclose(jac[:, k], numeric, atol=1e-2 * np.abs(numeric).max())
    for axis in range(3):
        turn = np.zeros(3)
        turn[axis] = 1e-5
        numeric = (px(points, turn=turn) - base).ravel() / 1e-5
        assert np.allclose(jac[:, ceiling.IDENTITY_MODES + axis], numeric, atol=1e-2 * np.abs(numeric).max())
        move = np.zeros(3)
        move[axis] = 1e-6
        numeric = (px(points, move=move) - base).ravel() / 1e-6
        assert np.allclose(jac[:, ceiling.IDENTITY_MODES + 3 + axis], numeric, atol=1e-2 * np.abs(numeric).max())


def test_identity_motion_is_explained_and_an_open_jaw_is_not(ict):
    corr, rotation, translation, camera, ids = _scene(ict)
    names = ict.expression_names
    zero_id = np.zeros(ict.identity_basis.shape[0])
    neutral = ict.vertices(zero_id, np.zeros(len(names)))
    jac = ceiling.point_jacobian(corr.points(neutral), ids, rotation, translation, camera)
    base = true_points_px(corr, neutral, rotation, translation, camera)[0]

    other = zero_id.copy()
    other[[1, 4, 9]] = [0.3, -0.2, 0.25]  # a slightly different person
    motion = true_points_px(corr, ict.vertices(other, np.zeros(len(names))), rotation, translation, camera)[0] - base
    assert np.linalg.norm(motion, axis=1).max() > 1.0
    left = ceiling.beyond(motion, jac, ceiling.IDENTITY_MODES)
    assert np.linalg.norm(left, axis=1).max() < 0.1 * np.linalg.norm(motion, axis=1).max()

    open_jaw = np.zeros(len(names))
    open_jaw[names.index("jawOpen")] = 0.8
    motion = true_points_px(corr, ict.vertices(zero_id, open_jaw), rotation, translation, camera)[0] - base
    left = ceiling.beyond(motion, jac, ceiling.IDENTITY_MODES)
    assert np.linalg.norm(left, axis=1).max() > 0.2 * np.linalg.norm(motion, axis=1).max()
