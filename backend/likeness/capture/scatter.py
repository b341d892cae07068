"""How MediaPipe's face landmarks scatter around the head model's points, as a correlated noise model for the fit.

MediaPipe places most of its 468 points from its own face model rather than from image features, so its errors
are not independent per point: they move together over the face (a cheek drifts as a whole, the mouth's points
lag the lips together) and such a joint drift reads like an expression. :class:`LandmarkScatter` holds the main
directions of that drift, measured on renders with a known truth (``python -m likeness.learned.scatter``):

    Σ = σ² diag(1 / w²) + share · U Λ Uᵀ

in the face's upright frame (x along the eye line from landmark 33 to 263, y down the image), in inter-ocular
distances: σ is the fit's isotropic ``noise``, w the per-landmark weights, U (936 × k) the k main directions of
the measured scatter and Λ their variances. The fit weighs a photo's landmark residual r by Σ⁻¹ (Woodbury):

    rᵀ Σ⁻¹ r = |W r|² − (Uᵀ W² r)ᵀ M (Uᵀ W² r),   M = (Λ⁻¹ / share + Uᵀ W² U)⁻¹,   W = diag(w) / σ

so motion along a direction MediaPipe often drifts in counts less, and share = 0 is the plain isotropic fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .landmarks import EYE_OUTER

FACE_POINTS = 468
SCATTER_FILE = Path(__file__).resolve().parents[1] / "data" / "landmark_scatter.npz"


def upright_angle(points_px: np.ndarray) -> np.ndarray:
    """The eye line's angle in the image (radians, x right, y down), from landmark 33 to 263: (...,)."""
    eye = points_px[..., EYE_OUTER[1], :] - points_px[..., EYE_OUTER[0], :]
    return np.arctan2(eye[..., 1], eye[..., 0])


def rotate(points: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """2D vectors (..., L, 2) turned by ``angle`` (radians, one per leading index)."""
    c, s = np.cos(angle), np.sin(angle)
    c, s = np.asarray(c)[..., None], np.asarray(s)[..., None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], -1)


def upright_residuals(seen_px: np.ndarray, true_px: np.ndarray) -> np.ndarray:
    """MediaPipe's error (seen − true) per face in its upright frame, in inter-ocular distances: (N, 468 × 2)
    from points (N, ≥468, 2) px, y down."""
    seen, true = seen_px[:, :FACE_POINTS].astype(np.float64), true_px[:, :FACE_POINTS].astype(np.float64)
    iod = np.linalg.norm(seen[:, EYE_OUTER[1]] - seen[:, EYE_OUTER[0]], axis=1)
    error = (seen - true) / np.maximum(iod, 1.0)[:, None, None]
    return rotate(error, -upright_angle(seen)).reshape(len(seen), -1)


def rigid_directions(points: np.ndarray) -> np.ndarray:
    """How the 468 points (468, 3) (head frame, x right, y up, z toward the camera) move in an upright image when
    the head shifts, scales, rolls, turns or nods (orthographic): (936, 6), x and y per landmark, y down."""
    u, v, z = points[:, 0], -points[:, 1], points[:, 2]
    one, zero = np.ones_like(u), np.zeros_like(u)
    moves = [(one, zero), (zero, one), (u, v), (-v, u), (z, zero), (zero, z)]
    return np.stack([np.stack(m, -1).ravel() for m in moves], -1)


@dataclass(frozen=True)
class LandmarkScatter:
    """The main directions of MediaPipe's landmark error: ``modes`` (k, 468, 2), unit length over all 936
    numbers, in the upright frame; ``variances`` (k,) in inter-ocular distances squared."""

    modes: np.ndarray
    variances: np.ndarray

    @classmethod
    def estimate(cls, residuals: np.ndarray, rank: int, rigid: np.ndarray | None = None) -> "LandmarkScatter":
        """The ``rank`` leading principal directions of ``residuals`` (N, 936) (:func:`upright_residuals`); with
        ``rigid`` (936, m) (:func:`rigid_directions`) those directions' part is taken out of every residual first, so
        the scatter model never discounts the landmarks' evidence on the head's pose."""
        if rigid is not None:
            residuals = residuals - (residuals @ np.linalg.pinv(rigid).T) @ rigid.T
        values, vectors = np.linalg.eigh(np.cov(residuals.T))
        order = np.argsort(values)[::-1][:rank]
        return cls(vectors[:, order].T.reshape(rank, FACE_POINTS, 2).copy(), values[order].copy())

    @classmethod
    def load(cls, path: Path = SCATTER_FILE, rank: int | None = None) -> "LandmarkScatter":
        with np.load(path, allow_pickle=False) as f:
            modes, variances = f["modes"].astype(np.float64), f["variances"].astype(np.float64)
        if modes.ndim != 3 or modes.shape[1:] != (FACE_POINTS, 2) or variances.shape != modes.shape[:1]:
            raise ValueError(f"{path}: not a landmark scatter file (modes {modes.shape}, variances {variances.shape})")
        return cls(modes[:rank], variances[:rank])

    def save(self, path: Path, **meta: str) -> None:
        np.savez_compressed(path, modes=self.modes.astype(np.float32), variances=self.variances.astype(np.float32),
                            **{k: np.array(v) for k, v in meta.items()})

    def weighted_normal_equations(self, jac: np.ndarray, r: np.ndarray, row_weights: np.ndarray, angle: float,
                                  share: float) -> tuple[np.ndarray, np.ndarray]:
        """JᵀΣ⁻¹J and JᵀΣ⁻¹r for one photo, from its already weighted rows ``jac`` (R, P) and ``r`` (R,)
        (= W × the residual in inter-ocular distances, the face's 936 rows first, x and y per landmark) and
        ``row_weights`` (R,) = W's diagonal; ``angle`` is the photo's upright angle (:func:`upright_angle`)."""
        modes = np.zeros((len(self.modes), len(r)))
        modes[:, :2 * FACE_POINTS] = rotate(self.modes, angle).reshape(len(self.modes), -1)
        scaled = modes * row_weights  # Uᵀ W
        inner = np.linalg.inv(np.diag(1.0 / (share * self.variances)) + scaled @ scaled.T)
        g_jac, g_r = scaled @ jac, scaled @ r  # Uᵀ W² J, Uᵀ W² r (J, r already carry one W)
        return jac.T @ jac - g_jac.T @ inner @ g_jac, jac.T @ r - g_jac.T @ inner @ g_r
