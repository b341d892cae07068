"""Small vectorised geometry helpers: rotations, similarity alignment, closest points on triangles."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def rodrigues(rvec: np.ndarray) -> np.ndarray:
    """Rotation matrix (3,3) from an axis-angle vector (radians)."""
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-12:
        return np.eye(3)
    k = np.asarray(rvec, np.float64) / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def axis_angle(rot: np.ndarray) -> np.ndarray:
    """Axis-angle vector (radians) of a rotation matrix (3,3): the inverse of :func:`rodrigues`."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    theta = float(np.arccos(cos))
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if theta < 1e-9:
        return axis / 2.0
    if np.pi - theta < 1e-6:  # half turn: the axis is the dominant column of R + I
        sym = (rot + np.eye(3)) / 2.0
        k = sym[:, np.argmax(np.diag(sym))]
        return k / np.linalg.norm(k) * theta
    return axis * theta / (2.0 * np.sin(theta))


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def head_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """``R = Rz(-roll) · Rx(pitch) · Ry(yaw)`` (head frame → OpenGL camera frame), see docs/bundle.md.

    yaw > 0 turns the nose toward the image's right, pitch > 0 turns it down, roll > 0 is clockwise.
    """
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    return _rz(-r) @ _rx(p) @ _ry(y)


def head_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees with ``head_rotation(*head_angles(R)) == R``."""
    # R = Rz(c) Rx(p) Ry(y): R[2,1] = sin p; R[2,0] = -cos p sin y; R[2,2] = cos p cos y;
    # R[0,1] = -sin c cos p; R[1,1] = cos c cos p
    pitch = np.arcsin(np.clip(rot[2, 1], -1.0, 1.0))
    yaw = np.arctan2(-rot[2, 0], rot[2, 2])
    c = np.arctan2(-rot[0, 1], rot[1, 1])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(-np.degrees(c))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``dst ≈ s · R · src + t`` (Umeyama, no reflection) for points (N,D) in 2 or 3 dimensions.
    Returns (s, R, t)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    fix = np.eye(src.shape[1])
    fix[-1, -1] = np.sign(np.linalg.det(u @ vt))
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix) / (a ** 2).sum(1).mean())
    return scale, rot, mu_d - scale * rot @ mu_s


def barycentric(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (N,3) of points (N,D) in triangles (N,D) each, unclamped."""
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    denom = d00 * d11 - d01 * d01
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    return np.stack([1 - v - w, v, w], -1)


def _closest_in_triangle(p: np.ndarray, a: np.ndarray, b: np.ndarray,
                         c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric coordinates (N,3) of the closest point to p on each triangle, and squared distances (N,)."""
    bary = barycentric(p, a, b, c)
    inside = np.all(bary >= 0, axis=-1)
    best = np.where(inside[:, None], bary, 0.0)
    best_d = np.where(inside, ((np.einsum("nk,nkd->nd", bary, np.stack([a, b, c], 1)) - p) ** 2).sum(-1), np.inf)
    corners = (a, b, c)
    for i, j in ((0, 1), (1, 2), (2, 0)):  # project onto each edge segment
        e = corners[j] - corners[i]
        t = np.clip(((p - corners[i]) * e).sum(-1) / np.maximum((e * e).sum(-1), 1e-30), 0.0, 1.0)
        q = corners[i] + t[:, None] * e
        d = ((q - p) ** 2).sum(-1)
        better = d < best_d
        cand = np.zeros_like(bary)
        cand[:, i], cand[:, j] = 1 - t, t
        best = np.where(better[:, None], cand, best)
        best_d = np.where(better, d, best_d)
    return best, best_d


def closest_points_on_triangles(points: np.ndarray, verts: np.ndarray, tris: np.ndarray,
                                candidates: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the closest triangle (index into ``tris``) and barycentric weights of the closest point.

    Candidates are the triangles with the nearest centroids; exact point-triangle distance picks among them.
    """
    centroids = verts[tris].mean(1)
    _, near = cKDTree(centroids).query(points, k=min(candidates, len(tris)))
    n, k = near.shape
    p = np.repeat(points, k, axis=0)
    t = tris[near.ravel()]
    bary, dist = _closest_in_triangle(p, verts[t[:, 0]], verts[t[:, 1]], verts[t[:, 2]])
    pick = dist.reshape(n, k).argmin(1)
    rows = np.arange(n) * k + pick
    return near[np.arange(n), pick], bary[rows]
