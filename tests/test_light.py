"""SH lighting: projection, rotation, estimation; the add-on's copy of the SH functions agrees."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from likeness import light as sh

from shared_paths import REPO


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


def test_addon_sh_basis_matches_the_backend():
    spec = importlib.util.spec_from_file_location("sh_light", REPO / "blender_addon" / "sh_light.py")
    addon_sh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(addon_sh)
    d = _sphere(200)
    np.testing.assert_allclose(addon_sh.sh_basis(d), sh.sh_basis(d), atol=1e-12)
    # the world's clamped radiance reprojects onto the light: band-0–2 coefficients × band factor = shading
    d = addon_sh._directions(4000)
    head = np.stack([d[:, 0], d[:, 2], -d[:, 1]], 1)
    for light in (sh.directional([0.3, 0.5, 0.8], strength=1.0, ambient=0.3),
                  sh.directional([1.0, 0.0, 0.2], strength=1.0, ambient=0.05)):  # strong: negative lobes
        radiance = addon_sh.radiance(light, d)
        assert radiance.min() >= 0
        back = addon_sh.project(radiance, sh.sh_basis(head)) * sh.BAND_FACTOR[:, None]
        np.testing.assert_allclose(back, light, atol=0.02 * light[0, 0])
