"""The bridge from FLAME to our ARKit-named rig: FLAME↔ICT surface correspondence, then ICT weights per expression.

Built once per pair of models (:func:`build`, a fraction of a second):

1. **Alignment.** FLAME's neutral head is brought into ICT's frame by a similarity transform: from the 68 iBUG
   landmarks when FLAME's landmark embedding is installed (ICT's are known), else from the nose tips; then
   refined by ICP against ICT's face surface.
2. **Correspondence.** Every FLAME vertex gets its closest point on ICT's skin (triangle and barycentric
   coordinates). Vertices within :data:`MAX_GAP` of ICT's face region, outside FLAME's eyeballs, carry the fit.
   MediaPipe's landmarks (ICT surface points, :mod:`likeness.model.correspondence`) get their closest points on
   FLAME the same way, and so do the 68 landmarks when there is no embedding.
3. **Reading an expression.** FLAME's displacement from its neutral (expression, jaw, eyelids: whatever SMIRK
   read) is taken into ICT's frame and ICT's 53 expression shapes, sampled at the corresponding points, are
   fitted to it by bounded least squares (weights in [0, 1], a small ridge): :meth:`Bridge.arkit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .correspondence import Correspondence
from .flame import Flame
from .headmodel import HeadModel

MAX_GAP = 0.01  # m: FLAME vertices farther from ICT's face (two different mean heads) do not carry the fit
RIDGE = 1e-3  # relative ridge on the weights


def closest_points(points: np.ndarray, verts: np.ndarray, tris: np.ndarray, k: int = 12):
    """For each point (N,3), the closest point on the triangles: (triangle index (N,), barycentric (N,3),
    distance (N,)). Candidates: the ``k`` triangles with the nearest centroids."""
    centroids = verts[tris].mean(1)
    _, cand = cKDTree(centroids).query(points, k=min(k, len(tris)))
    cand = cand.reshape(len(points), -1)
    a, b, c = (verts[tris[cand, i]] for i in range(3))  # (N,k,3)
    p = points[:, None, :]
    q, bary = _closest_on_triangles(p, a, b, c)
    dist = np.linalg.norm(q - p, axis=2)
    best = dist.argmin(1)
    rows = np.arange(len(points))
    return cand[rows, best], bary[rows, best], dist[rows, best]


def _closest_on_triangles(p, a, b, c):
    """Closest points (and their barycentrics) on triangles abc to p: the plane projection when it falls inside,
    else the nearest of the three edges."""
    ab, ac = b - a, c - a
    n = np.cross(ab, ac)
    nn = np.maximum((n * n).sum(-1, keepdims=True), 1e-30)
    ap = p - a
    v = (np.cross(ap, ac) * n).sum(-1, keepdims=True) / nn
    w = (np.cross(ab, ap) * n).sum(-1, keepdims=True) / nn
    inside = (v >= 0) & (w >= 0) & (v + w <= 1)
    best_q, best_bary = a + v * ab + w * ac, np.concatenate([1 - v - w, v, w], -1)
    best_d = np.where(inside[..., 0], np.linalg.norm(best_q - p, axis=-1), np.inf)
    for (s, e), (i, j) in (((a, b), (0, 1)), ((b, c), (1, 2)), ((c, a), (2, 0))):
        se = e - s
        t = np.clip(((p - s) * se).sum(-1, keepdims=True) / np.maximum((se * se).sum(-1, keepdims=True), 1e-30), 0, 1)
        q = s + t * se
        d = np.linalg.norm(q - p, axis=-1)
        bary = np.zeros(best_bary.shape)
        bary[..., i], bary[..., j] = 1 - t[..., 0], t[..., 0]
        better = d < best_d
        best_q = np.where(better[..., None], q, best_q)
        best_bary = np.where(better[..., None], bary, best_bary)
        best_d = np.minimum(d, best_d)
    return best_q, best_bary


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) with ``dst ≈ s · src @ R.T + t`` (least squares)."""
    ms, md = src.mean(0), dst.mean(0)
    xs, xd = src - ms, dst - md
    u, sig, vt = np.linalg.svd(xd.T @ xs / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / max((xs * xs).sum() / len(src), 1e-30))
    return scale, rot, md - scale * ms @ rot.T


def main_component(faces: np.ndarray, count: int) -> np.ndarray:
    """(V,) bool: vertices of the mesh's largest connected piece (FLAME's head, without the eyeballs)."""
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return labels == np.bincount(labels).argmax()


@dataclass(frozen=True, eq=False)
class Bridge:
    """FLAME → ICT: the alignment, the per-vertex correspondence and the least-squares system of the fit."""

    scale: float
    rotation: np.ndarray  # (3,3): ICT point = scale · FLAME point @ rotation.T + translation
    translation: np.ndarray
    carriers: np.ndarray  # (n,) FLAME vertex ids that carry the fit
    system: np.ndarray  # (n·3, E) ICT's expression shapes at those vertices, ICT frame
    names: tuple[str, ...]  # ICT's expression names
    landmarks_68: np.ndarray  # (68,) FLAME vertex ids
    mediapipe_tris: np.ndarray  # (N,3) FLAME vertex ids of the triangle holding each MediaPipe landmark
    mediapipe_bary: np.ndarray  # (N,3)
    gap: np.ndarray  # (V_flame,) distance to ICT's skin after alignment, m
    ict_corners: np.ndarray  # (V_flame,3) ICT vertex ids of the triangle closest to each FLAME vertex
    ict_bary: np.ndarray  # (V_flame,3) barycentric coordinates there
    reach: np.ndarray  # (V_flame,) in [0, 1]: how much of ICT's motion a FLAME vertex takes (transfer)

    def mediapipe_points(self, verts: np.ndarray) -> np.ndarray:
        """MediaPipe's landmarks (N,3) on FLAME vertices ``verts``."""
        return np.einsum("nk,nkd->nd", self.mediapipe_bary, verts[self.mediapipe_tris])

    def transfer(self, ict_deltas: np.ndarray) -> np.ndarray:
        """ICT shapes (E,V_ict,3) carried onto FLAME's vertices (E,V_flame,3) in FLAME's frame: each FLAME vertex
        moves as its closest ICT point does, fading out beyond :data:`MAX_GAP` (and on the eyeballs)."""
        sampled = np.einsum("vk,evkd->evd", self.ict_bary, ict_deltas[:, self.ict_corners])
        return (sampled @ self.rotation / self.scale) * self.reach[None, :, None]

    def arkit(self, displacement: np.ndarray) -> np.ndarray:
        """ICT's expression weights (E,) in [0, 1] that best explain a FLAME displacement (V,3) from neutral."""
        target = (self.scale * displacement[self.carriers] @ self.rotation.T).ravel()
        lam = np.sqrt(RIDGE * float(np.mean((self.system ** 2).sum(0))))
        matrix = np.vstack([self.system, lam * np.eye(self.system.shape[1])])
        rhs = np.concatenate([target, np.zeros(self.system.shape[1])])
        return lsq_linear(matrix, rhs, bounds=(0.0, 1.0), method="bvls").x


def _skin_triangles(ict: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """ICT's skin triangles and which of them lie in the face region."""
    kinds = np.array([m.kind for m in ict.materials])
    skin = kinds[ict.face_material[ict.triangle_face]] == "skin"
    tris = ict.triangles[skin]
    return tris, (tris < ict.face_vertex_count).all(1)


ICP_REACH = (0.02, 0.012, 0.008, 0.005, 0.004, 0.003)  # m: pairs farther apart are left out, iteration by iteration


def align(flame: Flame, ict: HeadModel, head: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """FLAME's template → ICT's neutral as a similarity (s, R, t): landmarks or nose tips, then ICP on ICT's face
    with a shrinking reach (:data:`ICP_REACH`), so FLAME's scalp, neck and ears, which ICT's face does not have,
    do not pull."""
    tris, face = _skin_triangles(ict)
    face_tris = tris[face]
    template = flame.template
    marks = flame.landmark_points(template)
    if marks is not None:
        inner = slice(17, 68)
        s, rot, t = umeyama(marks[inner], ict.neutral[ict.landmarks_68][inner].astype(np.float64))
    else:
        s, rot = 1.0, np.eye(3)
        ids = np.flatnonzero(head)
        nose_flame = template[ids[template[ids, 2].argmax()]]
        face_verts = ict.neutral[:ict.face_vertex_count].astype(np.float64)
        t = face_verts[face_verts[:, 2].argmax()] - nose_flame
    src = template[head]
    for reach in ICP_REACH:
        moved = s * src @ rot.T + t
        tri, bary, dist = closest_points(moved, ict.neutral.astype(np.float64), face_tris)
        near = dist < reach
        if near.sum() < 50:
            continue
        target = np.einsum("nk,nkd->nd", bary[near], ict.neutral[face_tris[tri[near]]].astype(np.float64))
        s, rot, t = umeyama(src[near], target)
    return s, rot, t


def build(flame: Flame, ict: HeadModel, table: Correspondence) -> Bridge:
    """The bridge between an installed FLAME and ICT (see the module docstring)."""
    head = main_component(flame.faces, flame.vertex_count)
    s, rot, t = align(flame, ict, head)
    ict_verts = ict.neutral.astype(np.float64)
    tris, face = _skin_triangles(ict)
    moved = s * flame.template @ rot.T + t
    tri, bary, gap = closest_points(moved, ict_verts, tris)
    carriers = np.flatnonzero(head & face[tri] & (gap < MAX_GAP))
    corners = tris[tri[carriers]]  # (n,3) ICT vertex ids
    system = np.einsum("nk,enkd->nde", bary[carriers], ict.expression_basis[:, corners].astype(np.float64))
    # MediaPipe's points (ICT surface) and, without an embedding, the 68 landmarks: closest points on FLAME
    flame_tris = flame.faces[head[flame.faces].all(1)]
    mp_ict = table.points(ict_verts)
    back = ((mp_ict - t) @ rot) / s
    mp_tri, mp_bary, _ = closest_points(back, flame.template, flame_tris)
    if flame.lmk_faces is not None:
        corners68 = flame.faces[flame.lmk_faces]
        landmarks = corners68[np.arange(68), flame.lmk_bary.argmax(1)]
    else:
        ict68 = ((ict_verts[ict.landmarks_68] - t) @ rot) / s
        ids = np.flatnonzero(head)
        landmarks = ids[cKDTree(flame.template[ids]).query(ict68)[1]]
    return Bridge(scale=s, rotation=rot, translation=t, carriers=carriers,
                  system=system.reshape(-1, system.shape[-1]), names=tuple(ict.expression_names),
                  landmarks_68=landmarks.astype(np.int32), mediapipe_tris=flame_tris[mp_tri].astype(np.int32),
                  mediapipe_bary=mp_bary, gap=gap, ict_corners=tris[tri].astype(np.int32), ict_bary=bary,
                  reach=np.clip(2.0 - gap / MAX_GAP, 0.0, 1.0) * head)
