"""Synthetic FLAME files for the tests (real FLAME and SMIRK weights are not available on the test machines).

- :func:`write_random_flame`: a ``generic_model.pkl`` with random bases of FLAME 2020's real shapes (5023
  vertices, 9976 triangles, 400 shape+expression modes, 5 joints), the arrays wrapped in chumpy-like
  ``chumpy.ch.Ch`` objects as in the original file, the regressor a SciPy sparse matrix.
- :func:`write_ict_flame`: a FLAME whose modes *mean something*: its head is a decimated copy of ICT's face
  (moved by a known similarity, so the bridge has to find it), its expression modes orthonormal mixes of ICT's
  53 shapes, its jaw a real skinning joint, its eyelid offsets ICT's eyeBlink shapes, its UVs ICT's. So the
  ARKit reading of a FLAME expression is known.
- :func:`write_smirk_checkpoint`: a random checkpoint in SMIRK_em1.pt's layout (flat dict, ``smirk_encoder.`` and
  ``smirk_generator.`` keys).
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.spatial import Delaunay

#: The known similarity that places the ICT-derived FLAME away from ICT's frame.
SHIFT = np.array([0.004, -0.031, -0.018])
TILT = 0.05  # rad about X


class _Ch:
    """Pickles like chumpy's Ch: class chumpy.ch.Ch, state a dict with the array in ``x``."""

    def __init__(self, x):
        self.x = np.asarray(x)

    def __getstate__(self):  # pickled by object.__reduce_ex__: copyreg._reconstructor (0, 1) or NEWOBJ (2+)
        return {"x": self.x, "_dirty_vars": set(), "_itr": 0}


def chumpy_dumps(obj, protocol: int = 2) -> bytes:
    """Pickle ``obj`` with :class:`_Ch` objects named ``chumpy.ch.Ch`` (a fake module only while dumping)."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    Ch = type("Ch", (_Ch,), {"__module__": "chumpy.ch"})
    ch.Ch, chumpy.ch = Ch, ch
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch})
    try:
        def wrap(v):
            return Ch(v.x) if isinstance(v, _Ch) else v
        return pickle.dumps({k: wrap(v) for k, v in obj.items()}, protocol=protocol)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _pickle_dict(template, shapedirs, posedirs, regressor, weights, faces) -> dict:
    joints = regressor.shape[0]
    kintree = np.array([[4294967295, 0, 1, 1, 1][:joints], list(range(joints))], dtype=np.int64)
    return {"v_template": _Ch(template), "shapedirs": _Ch(shapedirs), "posedirs": _Ch(posedirs),
            "J_regressor": sparse.csc_matrix(regressor), "weights": _Ch(weights), "kintree_table": kintree,
            "f": faces.astype(np.uint32), "bs_style": "lbs", "bs_type": "lrotmin"}


def write_random_flame(folder: Path, seed: int = 0) -> Path:
    """``folder/generic_model.pkl``: FLAME 2020's shapes, random values (float32 to keep it small)."""
    rng = np.random.default_rng(seed)
    v, f = 5023, 9976
    template = rng.normal(0, 0.05, (v, 3)).astype(np.float32)
    regressor = np.abs(rng.normal(size=(5, v))) * (rng.random((5, v)) < 0.01)
    regressor[[0, 1, 3, 4]] /= regressor[[0, 1, 3, 4]].sum(1, keepdims=True)
    weights = rng.dirichlet(np.ones(5), v).astype(np.float32)
    data = _pickle_dict(template, rng.normal(0, 1e-3, (v, 3, 400)).astype(np.float32),
                        rng.normal(0, 1e-3, (v, 3, 36)).astype(np.float32), regressor, weights,
                        rng.integers(0, v, (f, 3)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "generic_model.pkl").write_bytes(chumpy_dumps(data))
    return folder / "generic_model.pkl"


def _sphere(centre: np.ndarray, radius: float, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A small UV sphere: vertices and outward CCW triangles."""
    theta, phi = np.meshgrid(np.linspace(0.15, np.pi - 0.15, n), np.linspace(0, 2 * np.pi, 2 * n, endpoint=False))
    pts = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], -1).reshape(-1, 3)
    verts = centre + radius * pts
    from scipy.spatial import ConvexHull

    tris = ConvexHull(pts).simplices
    normal = np.cross(pts[tris[:, 1]] - pts[tris[:, 0]], pts[tris[:, 2]] - pts[tris[:, 0]])
    flip = (normal * pts[tris].mean(1)).sum(1) < 0
    tris[flip] = tris[flip][:, ::-1]
    return verts, tris


def ict_flame_arrays(ict, cell: float = 0.0055, seed: int = 1) -> dict:
    """The ICT-derived FLAME's arrays (see the module docstring), plus ``mix`` (50×53) and ``ids`` (ICT ids)."""
    rng = np.random.default_rng(seed)
    neutral = ict.neutral.astype(np.float64)
    face = neutral[:ict.face_vertex_count]
    front = np.flatnonzero(face[:, 2] > 0.02)
    keys = np.floor(face[front] / cell).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    ids = front[np.sort(first)]
    tri = Delaunay(face[ids, :2]).simplices
    pts = face[ids]
    edges = np.linalg.norm(pts[tri] - pts[tri[:, [1, 2, 0]]], axis=2).max(1)
    tri = tri[edges < 4 * cell]
    normal = np.cross(pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]])
    tri[normal[:, 2] < 0] = tri[normal[:, 2] < 0][:, ::-1]
    # two eyeballs as their own components (FLAME's are)
    eyes = []
    for side in "LR":
        start, stop = ict.eyeball_vertices[side]
        eyes.append(_sphere(neutral[start:stop].mean(0), 0.011))
    head_n = len(ids)
    verts = np.vstack([pts] + [e[0] for e in eyes])
    faces = np.vstack([tri, eyes[0][1] + head_n, eyes[1][1] + head_n + len(eyes[0][0])])
    v = len(verts)
    names = list(ict.expression_names)
    deltas = np.zeros((len(names), v, 3))
    deltas[:, :head_n] = ict.expression_basis[:, ids]
    mix = np.linalg.qr(rng.normal(size=(len(names), 50)))[0].T  # (50,53) orthonormal rows
    exprdirs = np.einsum("kj,jvd->vdk", mix, deltas)
    shapedirs = np.zeros((v, 3, 300))
    shapedirs[:head_n, :, :100] = np.moveaxis(ict.identity_basis[:100, ids], 0, 2)
    # joints: global (centroid), neck (low), jaw (behind the mouth, at ear depth), eyes (eyeball centres)
    jaw_amount = np.linalg.norm(deltas[names.index("jawOpen"), :head_n], axis=1)
    jaw_w = np.clip(jaw_amount / jaw_amount.max() * 1.3, 0, 1)
    regressor = np.zeros((5, v))
    regressor[0, :head_n] = 1
    low = np.argsort(pts[:, 1])[:20]
    regressor[1, low] = 1
    hinge, angle = _jaw_hinge(pts, deltas[names.index("jawOpen"), :head_n], jaw_w)
    near = np.argsort(np.linalg.norm(pts - hinge, axis=1))[:24]  # a row of weights whose average is the hinge
    system = np.vstack([pts[near].T, np.ones(len(near))])
    regressor[2, near] = np.linalg.lstsq(system, np.r_[hinge, 1.0], rcond=None)[0]
    regressor[3, head_n:head_n + len(eyes[0][0])] = 1
    regressor[4, head_n + len(eyes[0][0]):] = 1
    regressor[[0, 1, 3, 4]] /= regressor[[0, 1, 3, 4]].sum(1, keepdims=True)
    weights = np.zeros((v, 5))
    weights[:head_n, 2] = jaw_w
    weights[:head_n, 0] = 1 - jaw_w
    weights[head_n:head_n + len(eyes[0][0]), 3] = 1
    weights[head_n + len(eyes[0][0]):, 4] = 1
    lids = np.stack([deltas[names.index("eyeBlink_L")], deltas[names.index("eyeBlink_R")]])
    # the known similarity (FLAME = R·ICT + shift); bases turn with it
    c, s = np.cos(TILT), np.sin(TILT)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    uv = np.vstack([ict.uv[_uv_ids(ict, ids)], np.full((v - head_n, 2), 0.02)])
    return {"template": verts @ rot.T + SHIFT, "shapedirs": np.einsum("ab,vbk->vak", rot, shapedirs),
            "exprdirs": np.einsum("ab,vbk->vak", rot, exprdirs), "regressor": regressor, "weights": weights,
            "faces": faces, "eyelids": np.einsum("ab,svb->sva", rot, lids), "uv": uv, "mix": mix, "ids": ids,
            "head_count": head_n, "jaw_open_angle": angle}


def _jaw_hinge(pts: np.ndarray, jaw: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """The hinge on the X axis and the angle whose skinned rotation best matches ICT's jawOpen (small angles:
    d_y = w·(−θz + θz_h), d_z = w·(θy − θy_h), linear in θ, θz_h, θy_h)."""
    rows_y = np.stack([-w * pts[:, 2], w, np.zeros_like(w)], 1)
    rows_z = np.stack([w * pts[:, 1], np.zeros_like(w), -w], 1)
    (a, b, c), *_ = np.linalg.lstsq(np.vstack([rows_y, rows_z]), np.r_[jaw[:, 1], jaw[:, 2]], rcond=None)
    return np.array([0.0, c / a, b / a]), float(a)


def _uv_ids(ict, ids: np.ndarray) -> np.ndarray:
    """A UV index per ICT vertex (the first corner that uses it)."""
    lookup = np.full(ict.vertex_count, 0, np.int64)
    valid = ict.faces_uv >= 0
    lookup[ict.faces[valid][::-1]] = ict.faces_uv[valid][::-1]
    return lookup[ids]


def write_embedding(path: Path, faces: np.ndarray, bary: np.ndarray) -> Path:
    """A landmark_embedding.npy as DECA and SMIRK ship it: ``np.save`` of a dict (an object array, i.e. a pickle)."""
    np.save(path, {"full_lmk_faces_idx": faces[None].astype(np.int64), "full_lmk_bary_coords": bary[None],
                   "static_lmk_faces_idx": faces[17:].astype(np.int64), "static_lmk_bary_coords": bary[17:]},
            allow_pickle=True)
    return path


def write_ict_flame(folder: Path, ict, embedding: bool = False) -> dict:
    """A FLAME folder derived from ICT: generic_model.pkl, FLAME_texture.npz, l/r_eyelid.npy, and with
    ``embedding`` a landmark_embedding.npy one folder up (SMIRK's assets layout). Returns the arrays."""
    a = ict_flame_arrays(ict)
    v = len(a["template"])
    dirs = np.concatenate([a["shapedirs"], a["exprdirs"]], 2).astype(np.float32)
    data = _pickle_dict(a["template"].astype(np.float32), dirs, np.zeros((v, 3, 36), np.float32),
                        a["regressor"], a["weights"].astype(np.float32), a["faces"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "generic_model.pkl").write_bytes(chumpy_dumps(data))
    np.savez(folder / "FLAME_texture.npz", vt=a["uv"].astype(np.float32), ft=a["faces"].astype(np.int32))
    np.save(folder / "l_eyelid.npy", a["eyelids"][0].astype(np.float32))
    np.save(folder / "r_eyelid.npy", a["eyelids"][1].astype(np.float32))
    if embedding:  # ICT's 68 landmarks, moved like the head, as points on the synthetic FLAME's surface
        from likeness.model.flame_bridge import closest_points

        c, s = np.cos(TILT), np.sin(TILT)
        marks = ict.neutral[ict.landmarks_68].astype(np.float64) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T
        head = a["faces"][: len(a["faces"]) - 2 * len(_sphere(np.zeros(3), 1.0)[1])]
        tri, bary, _ = closest_points(marks + SHIFT, a["template"], head)
        write_embedding(folder.parent / "landmark_embedding.npy", tri, bary)
    return a


def write_smirk_checkpoint(path: Path, seed: int = 0, drop: str | None = None, reshape: str | None = None,
                           scale: float = 0.05, neutral: bool = False) -> Path:
    """A random checkpoint laid out like SMIRK_em1.pt (``torch.save`` of a flat dict); ``drop`` leaves a key
    out, ``reshape`` gives one a wrong shape; ``neutral`` zeroes the three linear heads (SMIRK then reads the mean
    neutral head, no pose, and a zero camera, whatever the photo)."""
    import torch

    from likeness.learned.smirk import SmirkEncoder

    torch.manual_seed(seed)
    out = {}
    for key, value in SmirkEncoder().state_dict().items():  # torch's random init, so activations keep their scale
        if key.endswith("running_var"):
            value = torch.rand_like(value) + 0.5
        elif value.dtype.is_floating_point and value.dim() <= 1:  # BatchNorm and linear biases, BatchNorm scales
            value = value + torch.randn_like(value) * scale
        if neutral and "_layers." in key:
            value = torch.zeros_like(value)
        out["smirk_encoder." + key] = value
    out["smirk_generator.encoder.0.weight"] = torch.zeros(4, 3, 3, 3)  # the U-Net's tensors are ignored
    if drop:
        del out[drop]
    if reshape:
        out[reshape] = torch.zeros(*out[reshape].shape, 2)
    torch.save(out, path)
    return path
