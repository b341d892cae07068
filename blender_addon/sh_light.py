"""A photo's SH light (bundle ``photos[i].light``) as an environment Blender can render; pure Python + NumPy.

The bundle stores 2nd-order spherical-harmonic *shading* coefficients ``c`` (9×3, head frame: +X the subject's
left, +Y up, +Z out of the face): a Lambertian surface with normal ``n`` and albedo ``a`` looks ``a · Σ c_k Y_k(n)``.
The band-limited environment radiance that lights a surface that way is ``L_k = c_k / A_l`` with the band
factors ``A = (1, 2/3, 1/4)``. It dips below zero behind a strong light, and a world cannot emit negative light;
so we pick the quadratic polynomial whose positive part has exactly those band 0–2 coefficients (a few Newton
steps), which changes the shading only through bands ≥ 4 (Lambertian factor ≤ 1/24, a percent or two). The
world shader evaluates it with a few math nodes (no image, no equirectangular mapping). The SH functions and
band factors are the backend's own (``likeness/light.py``, loaded from the backend source the add-on ships).
"""

from __future__ import annotations

import numpy as np

from .setup_backend import backend_module

_LIGHT = backend_module("appearance.light")  # the backend's SH functions and band factors, one copy for both sides
#: Monomials of a Blender-frame direction (x, y, z) the world shader evaluates, in this order.
MONOMIALS = ("1", "x", "y", "z", "xx", "yy", "zz", "xy", "yz", "zx")


def _monomials(d: np.ndarray) -> np.ndarray:
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, y * z, z * x], axis=1)


def radiance_polynomial(light: np.ndarray) -> np.ndarray:
    """Coefficients (10,3) over :data:`MONOMIALS` of a Blender-frame direction of the environment radiance,
    to be clamped at 0 (the world's MAXIMUM node); its positive part has the light's band 0–2 coefficients.

    ``light`` is (9,3) shading SH in the head frame. Blender's frame is the head frame turned Z-up: a Blender
    direction (x, y, z) is the head direction (x, z, −y).
    """
    blender = _LIGHT.sphere_directions(2000)
    head = np.stack([blender[:, 0], blender[:, 2], -blender[:, 1]], axis=1)
    basis = _LIGHT.sh_basis(head)
    target = np.asarray(light, np.float64) / _LIGHT.BAND_FACTOR[:, None]
    coeffs = target.copy()
    for _ in range(_NEWTON_STEPS):  # raise the polynomial until its clamped version projects to target
        values = basis @ coeffs
        residual = target - project(np.maximum(values, 0.0), basis)
        for channel in range(coeffs.shape[1]):  # Newton: d project(max(B c, 0)) / dc = Bᵀ [B c > 0] B
            jacobian = project(basis * (values[:, channel] > 0)[:, None], basis)
            coeffs[:, channel] += np.linalg.lstsq(jacobian, residual[:, channel], rcond=None)[0]
    return np.linalg.lstsq(_monomials(blender), basis @ coeffs, rcond=None)[0]


_NEWTON_STEPS = 12


def project(values: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """SH coefficients (9,C) of function values (N,C) on uniform directions whose SH are ``basis`` (N,9)."""
    return basis.T @ values * (4 * np.pi / len(basis))


def radiance(light: np.ndarray, directions_blender: np.ndarray) -> np.ndarray:
    """Environment radiance (N,3) the world emits in Blender-frame unit directions (N,3) (clamped at 0)."""
    return np.maximum(_monomials(np.asarray(directions_blender, np.float64)) @ radiance_polynomial(light), 0.0)
