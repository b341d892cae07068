"""SH lighting: projection, rotation, estimation, sRGB. The add-on's world from a light: tests/addon/test_relight.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from likeness.appearance import light as sh


def _sphere(n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(0)
    d = rng.standard_normal((n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_directional_light_approximates_a_clamped_cosine():
    d = _sphere()
    direction = np.array([0.6, 0.3, 0.74])
    direction /= np.linalg.norm(direction)
    s = sh.shading(sh.directional(direction, strength=1.0, ambient=0.2), d)[:, 0]
    truth = np.maximum(d @ direction, 0) + 0.2
    assert np.abs(s - truth).mean() < 0.05 and np.abs(s - truth).max() < 0.12


def test_rotation_moves_the_light_with_the_frame():
    d = _sphere()
    light = sh.directional([1.0, 0.2, 0.3])
    rot = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
    rotated = sh.rotate(light, rot)
    np.testing.assert_allclose(sh.shading(rotated, d @ rot.T), sh.shading(light, d), atol=1e-9)


@pytest.mark.parametrize("direction", [[1, 0.2, 0.5], [0, 0, 1], [-1, 0.5, 0.2]])
def test_estimate_recovers_the_same_albedo_under_any_light(direction):
    """Front-facing samples of one albedo, 5 % noise and some highlights: the same albedo from every light."""
    rng = np.random.default_rng(1)
    normals = _sphere()
    normals = normals[normals[:, 2] > 0.2]
    albedo = np.array([0.5, 0.35, 0.3])
    colors = albedo * np.maximum(sh.shading(sh.directional(direction, 1.0, 0.2), normals), 0)
    colors *= 1 + 0.05 * rng.standard_normal((len(normals), 1))
    colors[:40] *= 2.5  # specular highlights
    light = sh.estimate(colors, normals, np.ones(len(normals)))
    recovered = np.median(colors / np.maximum(sh.shading(light, normals), sh.MIN_SHADING), axis=0)
    # the scale convention (peak shading 1) gives the albedo up to the light's peak (1.2 here) / its strength
    np.testing.assert_allclose(recovered / recovered[0], albedo / albedo[0], rtol=0.03)
    assert 0.5 < recovered[0] < 0.7


def test_srgb_round_trip():
    values = np.arange(256) / 255.0
    np.testing.assert_array_equal(sh.linear_to_srgb8(sh.srgb_to_linear(values)), np.arange(256))
