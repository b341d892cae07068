"""The landmark fit recovers known pose, expression and identity from synthetic landmarks of the real model."""

import numpy as np
import pytest

from likeness.model.camera import Camera
from likeness.model.correspondence import load_table
from likeness.capture.fit import FitSettings, LandmarkBasis, Observation, bounded_solve, fit_landmarks
from likeness.model.geometry import head_angles, head_rotation


# These tests make landmarks from the model's own fixed correspondence, so the outline does not slide here;
# rendered photos (bench/quality/synthetic.py) test the sliding outline.
SETTINGS = FitSettings(sliding_contour=False)


@pytest.fixture(scope="module")
def basis(ict):
    return LandmarkBasis.build(ict, load_table(), SETTINGS)


def synth(basis, identity, expression, angles, camera, distance=0.6, noise_px=0.0, seed=0):
    """Project the model's landmarks like MediaPipe would report them (pixels + relative depth)."""
    rot = head_rotation(*angles)
    q = basis.points(identity, expression) @ rot.T + [0.01, -0.01, -distance]
    px, depth = camera.project(q)
    px = px + np.random.default_rng(seed).normal(scale=noise_px, size=px.shape)
    rel_depth = (depth - depth.mean()) * camera.focal_px / distance  # MediaPipe: smaller = nearer
    return px, rel_depth


def weights(ict, **named):
    w = np.zeros(len(ict.expression_names))
    for name, value in named.items():
        w[ict.expression_names.index(name)] = value
    return w


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, -10, 5), (-35, 12, -8)])
def test_recovers_pose_and_expression(ict, basis, angles):
    cam = Camera(900.0, (320.0, 240.0), (640, 480))
    identity = np.random.default_rng(3).normal(size=60) * 0.8
    truth = weights(ict, jawOpen=0.5, mouthSmile_L=0.8, mouthSmile_R=0.7, browInnerUp_L=0.6, browInnerUp_R=0.6)
    px, depth = synth(basis, identity, truth, angles, cam, noise_px=0.3)
    result = fit_landmarks(basis, [Observation(px, depth, cam)], SETTINGS)
    fit = result.photos[0]
    assert np.allclose(head_angles(fit.rotation), angles, atol=2.0)
    on = truth > 0
    assert np.abs(fit.expression[on] - truth[on]).mean() < 0.15
    assert fit.expression[~on].sum() < 1.5
    assert fit.rmse_px < 1.0
    assert np.all((fit.expression >= 0) & (fit.expression <= 1))


@pytest.mark.parametrize("side", ["L", "R"])
def test_one_sided_expressions_land_on_the_right_side(ict, basis, side):
    cam = Camera(900.0, (320.0, 320.0), (640, 640))
    other = "R" if side == "L" else "L"
    truth = weights(ict, **{f"eyeBlink_{side}": 1.0, f"mouthSmile_{side}": 0.8})
    px, depth = synth(basis, np.zeros(60), truth, (10, 0, 0), cam)
    fit = fit_landmarks(basis, [Observation(px, depth, cam)], SETTINGS).photos[0]
    e = dict(zip(ict.expression_names, fit.expression))
    assert e[f"eyeBlink_{side}"] > e[f"eyeBlink_{other}"] + 0.4
    assert e[f"mouthSmile_{side}"] > e[f"mouthSmile_{other}"] + 0.3


def test_several_photos_share_one_identity(ict, basis):
    cam = Camera(1000.0, (400.0, 400.0), (800, 800))
    identity = np.random.default_rng(7).normal(size=60)
    views = [synth(basis, identity, weights(ict, jawOpen=j), (yaw, 0, 0), cam, seed=i)
             for i, (yaw, j) in enumerate([(-30, 0.0), (0, 0.4), (30, 0.0)])]
    result = fit_landmarks(basis, [Observation(px, d, cam) for px, d in views], SETTINGS)
    shape_true = basis.points(identity, np.zeros(53))
    shape_fit = basis.points(result.identity, np.zeros(53))
    shape_mean = basis.points(np.zeros(60), np.zeros(53))
    # the recovered neutral shape is much closer to the truth than the mean face is
    assert np.abs(shape_fit - shape_true).mean() < 0.4 * np.abs(shape_mean - shape_true).mean()
    jaw = ict.expression_names.index("jawOpen")
    assert result.photos[1].expression[jaw] > 0.25 > result.photos[0].expression[jaw]


def test_bounded_solve_respects_bounds_and_matches_unbounded_inside():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=40)
    free = np.linalg.lstsq(a, b, rcond=None)[0]
    inside = bounded_solve(a.T @ a, a.T @ b, np.full(5, -10.0), np.full(5, 10.0))
    np.testing.assert_allclose(inside, free, atol=1e-9)
    tight = bounded_solve(a.T @ a, a.T @ b, np.zeros(5), np.full(5, 0.05))
    assert tight.min() >= 0 and tight.max() <= 0.05
    assert np.linalg.norm(a @ tight - b) <= np.linalg.norm(a @ np.zeros(5) - b)
