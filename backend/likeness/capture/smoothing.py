"""Temporal clean-up of per-frame tracks: bridging lost frames and the One Euro filter.

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a first-order low-pass filter whose cut-off
frequency rises with the signal's speed: slow signals (a still face with landmark noise) are smoothed hard,
fast ones (a blink, a jaw drop) pass with little lag. It is causal, so the same filter can run live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuro:
    """Parameters of one group of channels: ``min_cutoff`` in Hz, ``beta`` in Hz per (unit/s) of the signal's
    speed, ``d_cutoff`` in Hz for the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.1
    d_cutoff: float = 1.0


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    """Smoothing factor of an exponential filter with this cut-off (Hz) at ``rate`` samples per second."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


def one_euro(x: np.ndarray, rate: float, params: OneEuro | list[OneEuro]) -> np.ndarray:
    """Filter ``x`` (T, C) sampled at ``rate`` frames per second along axis 0; one parameter set for all
    channels or one per channel. Returns (T, C) float64; the first frame passes unchanged."""
    x = np.asarray(x, np.float64)
    per = [params] * x.shape[1] if isinstance(params, OneEuro) else list(params)
    min_cutoff = np.array([p.min_cutoff for p in per])
    beta = np.array([p.beta for p in per])
    a_d = _alpha(np.array([p.d_cutoff for p in per]), rate)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    out[0] = x[0]
    speed = np.zeros(x.shape[1])
    for t in range(1, len(x)):  # recursive over frames, vectorised over channels
        speed = a_d * (x[t] - out[t - 1]) * rate + (1 - a_d) * speed
        a = _alpha(min_cutoff + beta * np.abs(speed), rate)
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def bridge(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill the frames where ``valid`` (T,) is False by linear interpolation between the nearest valid frames
    (holding the first/last valid value at the ends). ``x`` is (T, C); returns a new array. Needs one valid
    frame."""
    x = np.asarray(x, np.float64)
    valid = np.asarray(valid, bool)
    if valid.all():
        return x.copy()
    if not valid.any():
        raise ValueError("no valid frame to bridge from")
    t, known = np.arange(len(x)), np.flatnonzero(valid)
    return np.stack([np.interp(t, known, x[known, c]) for c in range(x.shape[1])], axis=1)


def jitter(x: np.ndarray) -> np.ndarray:
    """Mean absolute second difference over frames, |x[t+1] − 2 x[t] + x[t−1]|, per column of (T, C)."""
    x = np.asarray(x, np.float64)
    return np.abs(x[2:] - 2 * x[1:-1] + x[:-2]).mean(0)


def step_lag(filtered: np.ndarray, step_at: int, level: float = 0.5) -> int:
    """Frames after ``step_at`` until a filtered unit step (0 → 1 at frame ``step_at``) first reaches ``level``."""
    above = np.flatnonzero(np.asarray(filtered)[step_at:] >= level)
    return int(above[0]) if len(above) else len(filtered) - step_at
