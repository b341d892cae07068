"""The photo's lighting as 2nd-order spherical harmonics (SH), estimated from the fitted head, and divided out.

Shading model (Lambertian, linear RGB): ``pixel = albedo × S(n)`` with ``S(n) = Σ_k c_k Y_k(n)`` for the nine
real SH functions ``Y_k`` of the unit surface normal ``n``. ``c`` (9×3, one column per RGB channel) is what we
store as a photo's ``light``; it is the irradiance divided by π, so a uniform white environment of radiance 1
gives ``S = 1`` everywhere. The environment radiance that produces it is ``L_k = c_k / A_l`` with the
Lambertian band factors ``A = (1, 2/3, 1/4)`` (Ramamoorthi & Hanrahan 2001).

Estimation: the face's skin (away from brows, eyes, lips and nostrils) is assumed to have one albedo. A least
squares fit of ``c`` to the luminance of the photo's linear colours at well-seen skin vertices, reweighted to
ignore specular highlights (too bright) and cast shadows or stubble (too dark), then kept plausible (no more
directional than one light, no negative shading), gives the light up to a scale. Albedo and light intensity
cannot be told apart from one photo; we fix the scale so that the brightest shading over all directions is 1
(a surface facing the light straight on shows its albedo), as a photographer exposes for the lit side of a
face: the same skin then gets the same albedo under a front, side or top light. The light's colour cannot be
told from the skin's either: the light is estimated as white, so any colour cast stays in the albedo.

Directions are in the head frame (metres, +Y up, +Z out of the face, +X the subject's left) unless a function
says otherwise.
"""

from __future__ import annotations

import numpy as np

#: Lambertian convolution factor of each band divided by π: shading coefficient = factor × radiance coefficient.
BAND_FACTOR = np.array([1.0, 2 / 3, 2 / 3, 2 / 3, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 1 / 4])
#: Shading never drops below this when dividing it out (deep shadow holds no albedo information).
MIN_SHADING = 0.12
_ROBUST_ITERATIONS = 3


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """The nine real SH functions (N,9) of unit directions (N,3), order l=0; l=1 (y, z, x); l=2."""
    n = np.asarray(normals, np.float64)
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([
        np.full_like(x, 0.282095),
        0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], axis=1)


def shading(light: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Shading S (N,3) of unit normals (N,3) under SH light (9,3), both in the same frame."""
    return sh_basis(normals) @ np.asarray(light, np.float64)


def rotate(light: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The SH light (9,3) seen in a frame rotated by ``rotation`` (3×3, new = R · old).

    Exact for bands 0–2: the coefficients are refitted on a fixed set of directions (SH of degree ≤ 2 is closed
    under rotation, so the least-squares fit reproduces the rotated function exactly).
    """
    dirs = sphere_directions(64)
    values = shading(light, dirs @ np.asarray(rotation))  # S_new(d) = S_old(Rᵀ d); rows: dᵀ R = (Rᵀ d)ᵀ
    return np.linalg.lstsq(sh_basis(dirs), values, rcond=None)[0]


def directional(direction: np.ndarray, strength: float = 1.0, ambient: float = 0.3) -> np.ndarray:
    """SH light (9,3) of a white light from ``direction`` (towards the light) plus a uniform ambient.

    ``strength`` scales the clamped cosine max(0, n·d); band-limited to 2nd order, a surface facing the light
    straight on gets about 1.06 × ``strength`` from it.
    """
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    light = np.outer(_cosine_lobe(d) * strength, np.ones(3))
    light[0] += ambient / 0.282095
    return light


def _cosine_lobe(d: np.ndarray) -> np.ndarray:
    """SH projection (9,) of the clamped cosine lobe max(0, n·d) as a function of n."""
    # max(0, cos θ) has zonal coefficients (√π/2, √(π/3), √(5π)/8) for l = 0, 1, 2 around its axis
    zonal = np.array([np.sqrt(np.pi) / 2, np.sqrt(np.pi / 3), np.sqrt(5 * np.pi) / 8])
    band = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])
    scale = np.sqrt(4 * np.pi / (2 * band + 1))
    return zonal[band] * scale * sh_basis(d[None])[0]


def estimate(colors_linear: np.ndarray, normals: np.ndarray, weights: np.ndarray,
             regularisation: float = 1e-3) -> np.ndarray:
    """SH light (9,3) from linear colours (N,3) of one-albedo skin with unit normals (N,3) and weights (N,).

    The light's shape is fitted to the luminance (per-channel fits chase noise and skin-colour variation), so
    the three columns are equal: a white light. Iteratively reweighted: samples far brighter (specular) or
    darker (shadow, hair) than the fitted shading lose their weight. Band-2 coefficients are damped by
    ``regularisation`` (few normals face away from the camera, so they are weakly observed). The result is
    scaled so that a surface facing the light straight on has shading 1.
    """
    basis = sh_basis(normals)
    luminance = np.asarray(colors_linear, np.float64) @ LUMINANCE
    w = np.asarray(weights, np.float64).copy()
    damp = np.diag(np.r_[np.full(4, 1e-9), np.full(5, regularisation)])  # the tiny ridge keeps it solvable
    light = np.zeros(9)
    for _ in range(_ROBUST_ITERATIONS):
        sw = w / max(w.sum(), 1e-12)
        light = np.linalg.solve(basis.T @ (basis * sw[:, None]) + damp, basis.T @ (luminance * sw))
        ratio = luminance / np.maximum(basis @ light, 1e-6)
        w = weights * (ratio < 1.35) * (ratio > 0.6)  # drop highlights and cast shadows / stubble
    light = _physical(light, basis, luminance, w)
    peak = (sh_basis(_SPHERE) @ light).max()
    return np.repeat((light / max(peak, 1e-6))[:, None], 3, axis=1)


#: Rec. 709 luminance weights of linear RGB.
LUMINANCE = np.array([0.2126, 0.7152, 0.0722])


#: Band 1 may be at most this times band 0: the limit is a single clamped-cosine light (1.023 / 0.886).
MAX_DIRECTIONALITY = 1.155
#: No direction's shading may fall below this (the band-limited clamped cosine dips to about −0.06).
MIN_SPHERE_SHADING = -0.08


def _physical(light: np.ndarray, basis: np.ndarray, luminance: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Project a fitted light onto plausible ones: no more directional than one light, no negative shading.

    Darkening towards the silhouette that no light can cause (stray hair and background pixels, skin that is
    not Lambertian at grazing angles) otherwise makes the fit trade a negative ambient for a steep frontal
    falloff (band 1), or bend the shading below zero at the sides (band 2). Band 1 beyond the limit is refitted
    along its direction with one scale (and band 2 free); band 2 is then shrunk until no direction's shading,
    relative to the peak, falls below :data:`MIN_SPHERE_SHADING`.
    """
    sw = w / max(w.sum(), 1e-12)
    band1 = np.linalg.norm(light[1:4])
    if band1 > MAX_DIRECTIONALITY * max(light[0], 0.0) and band1 > 1e-9:
        shape = np.r_[1.0, MAX_DIRECTIONALITY * light[1:4] / band1]
        columns = np.column_stack([basis[:, :4] @ shape, basis[:, 4:]])
        solution = np.linalg.lstsq(columns * np.sqrt(sw)[:, None], luminance * np.sqrt(sw), rcond=None)[0]
        light = np.r_[solution[0] * shape, solution[1:]]
    if light[0] <= 0:  # nothing sensible (a black or degenerate face): a uniform light at the mean brightness
        return np.r_[max(float((luminance * sw).sum()), 1e-6) / basis[0, 0], np.zeros(8)]
    sphere = sh_basis(_SPHERE)
    low, band2 = sphere[:, :4] @ light[:4], sphere[:, 4:] @ light[4:]
    floor = MIN_SPHERE_SHADING * (low + band2).max()
    below = low + band2 < floor
    if below.any():
        shrink = np.clip((low[below] - floor) / -band2[below], 0.0, 1.0).min()
        light = np.r_[light[:4], shrink * light[4:]]
    return light


def sphere_directions(n: int) -> np.ndarray:
    """n roughly uniform unit directions (n,3) (a Fibonacci sphere)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


_SPHERE = sphere_directions(400)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] → linear (float32)."""
    v = np.asarray(values, np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb8(values: np.ndarray) -> np.ndarray:
    """Linear values (clipped to [0, 1]; NaN → 0) → sRGB uint8, through a 4096-entry table."""
    index = np.clip(np.nan_to_num(np.asarray(values) * 4095.0 + 0.5), 0, 4095).astype(np.int32)
    return _SRGB8_TABLE[index]


_SRGB8_TABLE = np.round(255 * np.where(np.linspace(0, 1, 4096) <= 0.0031308, np.linspace(0, 1, 4096) * 12.92,
                                       1.055 * np.linspace(0, 1, 4096) ** (1 / 2.4) - 0.055)).astype(np.uint8)
#: sRGB uint8 → linear float32 lookup.
SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0)
