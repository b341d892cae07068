"""FLAME as a :class:`~likeness.model.headmodel.HeadModel`: the mesh, UVs and shape keys a FLAME bundle carries.

Bundle shape keys have weights in [0, 1] (docs/bundle.md), and FLAME's parameters are signed, so:

- each of SMIRK's 50 expression modes is a pair of keys ``flame_exp_NN_pos`` / ``_neg``, the mode at
  ±:data:`EXP_RANGE` (weight ``|coefficient| / EXP_RANGE``; coefficients beyond it are clipped);
- SMIRK's eyelids are ``eyelid_L`` / ``eyelid_R`` (when the eyelid offsets are installed);
- the jaw joint is linearised into keys: ``jaw_open`` (:data:`JAW_OPEN` rad about X), ``jaw_left`` /
  ``jaw_right`` (±:data:`JAW_SIDE` rad about Y), ``jaw_tilt_left`` / ``jaw_tilt_right`` (about Z), each the
  skinned displacement of the mean head at that angle.

The texture bake uses the exactly skinned head; the bundle's keys reproduce it up to the jaw's linearisation.
"""

from __future__ import annotations

import numpy as np

from .flame import Flame
from .flame_bridge import main_component
from .headmodel import HeadModel, Material

EXP_RANGE = 3.0
N_EXP = 50
JAW_OPEN = 0.5  # rad
JAW_SIDE = 0.2  # rad: SMIRK clamps the two side axes to ±0.2
LICENSE_NAME = "FLAME licence: non-commercial scientific research only (model supplied by the user)"
SKIN = Material("skin", "skin", (0.62, 0.42, 0.33, 1.0), 0.5, True)
EYES = Material("eyes", "eye", (0.80, 0.78, 0.75, 1.0), 0.1, False)
_JAW_KEYS = (("jaw_open", 0, JAW_OPEN), ("jaw_left", 1, JAW_SIDE), ("jaw_right", 1, -JAW_SIDE),
             ("jaw_tilt_left", 2, JAW_SIDE), ("jaw_tilt_right", 2, -JAW_SIDE))


def key_names(flame: Flame) -> tuple[str, ...]:
    n = min(N_EXP, flame.exprdirs.shape[2])
    names = [f"flame_exp_{k:02d}_{sign}" for k in range(n) for sign in ("pos", "neg")]
    if flame.eyelids is not None:
        names += ["eyelid_L", "eyelid_R"]
    return tuple(names + [name for name, _, _ in _JAW_KEYS])


def key_deltas(flame: Flame) -> np.ndarray:
    """(E,V,3) float32 deltas in the order of :func:`key_names`."""
    n = min(N_EXP, flame.exprdirs.shape[2])
    modes = np.moveaxis(flame.exprdirs[..., :n], 2, 0) * EXP_RANGE
    out = [np.stack([modes, -modes], 1).reshape(2 * n, -1, 3)]
    if flame.eyelids is not None:
        out.append(flame.eyelids)
    rest = flame.template
    for _, axis, angle in _JAW_KEYS:
        pose = np.zeros((len(flame.parents), 3))
        pose[2, axis] = angle
        out.append((flame.skin(rest, pose) - rest)[None])
    return np.concatenate(out).astype(np.float32)


def key_weights(flame: Flame, expression: np.ndarray, eyelids: np.ndarray | None, jaw: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] of FLAME's own keys (:func:`key_names`) for SMIRK's expression (50,), eyelids (2,) and jaw
    (3,); keys after them (the ARKit ones) stay 0."""
    n = min(N_EXP, flame.exprdirs.shape[2])
    e = np.zeros(n)
    e[:min(n, len(expression))] = expression[:n]
    out = [np.stack([np.maximum(e, 0), np.maximum(-e, 0)], 1).ravel() / EXP_RANGE]
    if flame.eyelids is not None:
        out.append(np.zeros(2) if eyelids is None else np.asarray(eyelids, np.float64))
    out.append([max(jaw[axis] / angle, 0.0) for _, axis, angle in _JAW_KEYS])
    return np.clip(np.concatenate(out), 0.0, 1.0)


def _fallback_uv(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A cylindrical UV layout (u around the vertical axis, seam at the back) when FLAME's texture space is not
    installed: per-vertex UVs, plus shifted copies for the corners of triangles that straddle the seam."""
    centre = verts.mean(0)
    d = verts - centre
    u = np.arctan2(d[:, 0], d[:, 2]) / (2 * np.pi) + 0.5
    v = (d[:, 1] - d[:, 1].min()) / max(np.ptp(d[:, 1]), 1e-9)
    corner_u = u[faces]
    straddle = (corner_u.max(1) - corner_u.min(1)) > 0.5
    low = straddle[:, None] & (corner_u < 0.5)
    extra = faces[low]
    uv = np.concatenate([np.stack([u, v], 1), np.stack([u[extra] + 1.0, v[extra]], 1)])
    faces_uv = faces.copy()
    faces_uv[low] = len(verts) + np.arange(len(extra))
    uv[:, 0] /= uv[:, 0].max()
    return uv.astype(np.float32), faces_uv.astype(np.int32)


def eyeball_ranges(flame: Flame) -> dict[str, tuple[int, int]]:
    """Vertex ranges of FLAME's eyeballs (the pieces beside the head; L = the subject's left, +X)."""
    rest = np.flatnonzero(~main_component(flame.faces, flame.vertex_count))
    out = {}
    for side, pick in (("L", flame.template[rest, 0] > 0), ("R", flame.template[rest, 0] <= 0)):
        ids = rest[pick]
        out[side] = (int(ids.min()), int(ids.max()) + 1) if len(ids) else (0, 0)
    return out


def head_model(flame: Flame, landmarks_68: np.ndarray, arkit: tuple[tuple[str, ...], np.ndarray] | None = None
               ) -> HeadModel:
    """The FLAME mesh as a head model: identity modes, the keys above, one projected skin material, the eyes.
    ``arkit``: (names, deltas (E,V,3)) of ICT's ARKit-named shapes carried onto FLAME (:meth:`Bridge.transfer`),
    appended after FLAME's own keys, so ARKit tools (Live Link Face, tracks) can drive a FLAME head."""
    faces = np.full((len(flame.faces), 4), -1, np.int32)
    faces[:, :3] = flame.faces
    if flame.uv is not None:
        uv, faces_uv3 = flame.uv.astype(np.float32), flame.faces_uv.astype(np.int32)
    else:
        uv, faces_uv3 = _fallback_uv(flame.template, flame.faces.astype(np.int64))
    faces_uv = np.full_like(faces, -1)
    faces_uv[:, :3] = faces_uv3
    head = main_component(flame.faces, flame.vertex_count)
    face_material = np.where(head[flame.faces].all(1), 0, 1).astype(np.int32)
    return HeadModel(
        name="flame", neutral=flame.template.astype(np.float32),
        identity_basis=np.moveaxis(flame.shapedirs, 2, 0).astype(np.float32),
        expression_basis=np.concatenate([key_deltas(flame), *([arkit[1].astype(np.float32)] if arkit else [])]),
        expression_names=key_names(flame) + (tuple(arkit[0]) if arkit else ()), faces=faces, faces_uv=faces_uv,
        uv=np.clip(uv, 0.0, 1.0), face_material=face_material, materials=(SKIN, EYES),
        landmarks_68=np.asarray(landmarks_68, np.int32), face_vertex_count=flame.vertex_count,
        eyeball_vertices=eyeball_ranges(flame), license_name=LICENSE_NAME, license_text=flame.license_text,
        non_commercial=True)
