"""Sliding correspondence for MediaPipe's jaw and cheek outline.

MediaPipe's face-oval landmarks along the jaw and cheeks mark the face's silhouette, which moves over the head
as it turns: a fixed surface point is wrong as soon as the head is not frontal. Each such landmark gets a set of
candidate vertices (the model's face-region vertices within :data:`RADIUS` of its rest correspondence); in every
fit iteration it is matched to the candidate that lies on the current silhouette (surface seen edge-on) nearest
to it in the image, and to its rest point when no candidate is on the silhouette.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.camera import Camera
from ..model.correspondence import FACE_OVAL, Correspondence
from ..model.headmodel import HeadModel
from ..appearance.raster import vertex_normals

#: Candidate vertices lie within this distance (m) of the landmark's rest correspondence point.
RADIUS = 0.02
#: A candidate is on the silhouette when |cos| between its normal and the view ray is below this.
EDGE_ON = 0.3
#: Oval landmarks below this height (m, head frame) slide: jaw, chin and cheeks, not the forehead.
MAX_HEIGHT = 0.0


@dataclass(frozen=True)
class Contour:
    """Candidate silhouette points: S sliding landmarks × C candidates (padded by repeating a candidate)."""

    landmarks: np.ndarray  # (S,) MediaPipe landmark ids
    base: np.ndarray  # (S,C,3) m
    identity: np.ndarray  # (K,S,C,3)
    expression: np.ndarray  # (E,S,C,3)
    normals: np.ndarray  # (S,C,3) unit normals of the neutral head

    @classmethod
    def build(cls, model: HeadModel, corr: Correspondence, identity_count: int) -> "Contour":
        neutral = model.neutral.astype(np.float64)
        rest = corr.points(neutral)
        sliding = np.array([i for i in FACE_OVAL if rest[i, 1] < MAX_HEIGHT])
        face = neutral[:model.face_vertex_count]
        near = [np.flatnonzero(np.linalg.norm(face - rest[i], axis=1) < RADIUS) for i in sliding]
        width = max(len(n) for n in near)
        ids = np.stack([np.resize(n, width) for n in near])  # (S,C), padded with repeats
        normals = vertex_normals(neutral, model.triangles)
        return cls(landmarks=sliding, base=neutral[ids],
                   identity=np.ascontiguousarray(model.identity_basis[:identity_count][:, ids], np.float64),
                   expression=np.ascontiguousarray(model.expression_basis[:, ids], np.float64),
                   normals=normals[ids])

    def choose(self, identity: np.ndarray, expression: np.ndarray, rotation: np.ndarray,
               translation: np.ndarray, camera: Camera, observed_px: np.ndarray) -> np.ndarray | None:
        """Per sliding landmark, the index (into C) of its silhouette candidate; −1 keeps the rest point.

        ``observed_px``: (S,2) detected positions of :attr:`landmarks`.
        """
        k, e = len(identity), len(expression)
        points = self.base + (identity @ self.identity.reshape(k, self.base.size)  # k may be 0 (identity fixed)
                              + expression @ self.expression.reshape(e, -1)).reshape(self.base.shape)
        q = points @ rotation.T + translation  # (S,C,3) camera frame
        facing = np.abs((self.normals @ rotation.T * q).sum(-1)) / np.linalg.norm(q, axis=-1)
        px, _ = camera.project(q.reshape(-1, 3))
        dist = np.linalg.norm(px.reshape(q.shape[0], q.shape[1], 2) - observed_px[:, None], axis=-1)
        dist[facing > EDGE_ON] = np.inf
        best = dist.argmin(1)
        return np.where(np.isfinite(dist[np.arange(len(best)), best]), best, -1)
