"""The parametric head model: one small interface every topology (ICT now, FLAME later) provides.

A head is ``neutral + identity_basis · identity + expression_basis · expression``:

- units **metres**; head frame +Y up, +Z out of the face, +X the subject's own left (glTF convention);
- ``identity`` coefficients are unit-variance (about N(0, 1) each, ±3 plausible);
- ``expression`` weights lie in [0, 1], one per named shape (ARKit-style names, ``_L`` = subject's left).

Fitting, texturing and the bundle only use this interface, so a new topology plugs in by writing a loader
that returns a :class:`HeadModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import ModelMissing

ICT_FILE = "ict_face_model.npz"  # the packed model inside a folder given as --model
ICT_INSTALL_HINT = "Install it with `likeness models install ict` (or `--from PATH` for a local copy)."


@dataclass(frozen=True)
class Material:
    """A group of polygons that share a surface (skin, eyes, teeth, ...).

    ``projected`` materials get a colour texture projected from the photos; the others get ``base_color``
    (linear RGBA; alpha 0 hides helper shells such as the eye-occlusion mesh).
    """

    name: str
    kind: str
    base_color: tuple[float, float, float, float]
    roughness: float = 0.5
    projected: bool = False


@dataclass(frozen=True, eq=False)
class HeadModel:
    """A linear head model with named expression shapes. See the module docstring for units and axes."""

    name: str
    neutral: np.ndarray  # (V,3) float32, m
    identity_basis: np.ndarray  # (K,V,3) float32, m per unit coefficient
    expression_basis: np.ndarray  # (E,V,3) float32, m at weight 1
    expression_names: tuple[str, ...]
    faces: np.ndarray  # (F,4) int32, -1 in column 3 for triangles, CCW from outside
    faces_uv: np.ndarray  # (F,4) int32 into uv
    uv: np.ndarray  # (T,2) float32 in [0,1], v up, relative to the polygon's material texture
    face_material: np.ndarray  # (F,) int32 into materials
    materials: tuple[Material, ...]
    landmarks_68: np.ndarray  # (68,) int32 vertex ids, iBUG order
    face_vertex_count: int  # vertices [0, face_vertex_count) form the face region used for fitting
    eyeball_vertices: dict[str, tuple[int, int]]  # "L"/"R" (subject's side) -> vertex range [start, stop)
    license_name: str
    license_text: str
    non_commercial: bool = False

    @property
    def vertex_count(self) -> int:
        return int(self.neutral.shape[0])

    def eyeball_mask(self) -> np.ndarray:
        """(V,) bool: the vertices of both eyeballs."""
        mask = np.zeros(self.vertex_count, bool)
        for start, stop in self.eyeball_vertices.values():
            mask[start:stop] = True
        return mask

    def vertices(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """Vertices (V,3) in metres, head frame, for the given coefficients (missing = zeros); no head pose."""
        verts = self.neutral.astype(np.float64, copy=True)
        if identity is not None:
            k = len(identity)
            verts += np.tensordot(np.asarray(identity, np.float64), self.identity_basis[:k], axes=1)
        if expression is not None:
            verts += np.tensordot(np.asarray(expression, np.float64), self.expression_basis, axes=1)
        return verts

    @cached_property
    def triangles(self) -> np.ndarray:
        """(N,3) int32 triangles (quads split along their 0–2 diagonal), CCW from outside."""
        return split_quads(self.faces)

    @cached_property
    def triangle_face(self) -> np.ndarray:
        """(N,) int32: the polygon each of :attr:`triangles` came from."""
        quad = self.faces[:, 3] >= 0
        return np.concatenate([np.arange(len(self.faces)), np.flatnonzero(quad)]).astype(np.int32)


def split_quads(polys: np.ndarray) -> np.ndarray:
    """Split (F,4) polygons (``-1`` in column 3 = triangle) into (N,3) triangles: all (0,1,2) first, then (0,2,3)."""
    quad = polys[:, 3] >= 0
    first = polys[:, :3]
    second = polys[quad][:, [0, 2, 3]]
    return np.concatenate([first, second]).astype(np.int32)


# ICT Face Model Light specifics ----------------------------------------------------------------------

# material name in the ICT npz -> (our material, kind, linear base colour, roughness, projected, UV tile)
_ICT_MATERIALS = {
    "M_Face": ("skin_face", "skin", (0.62, 0.42, 0.33, 1.0), 0.5, True, 0),
    "M_BackHead": ("skin_head", "skin", (0.62, 0.42, 0.33, 1.0), 0.55, True, 1),
    "M_GumsTongue": ("mouth", "mouth", (0.45, 0.08, 0.08, 1.0), 0.35, False, 2),
    "M_Teeth": ("teeth", "teeth", (0.80, 0.76, 0.66, 1.0), 0.25, False, 3),
    "M_ScleraLeft": ("sclera", "eye", (0.80, 0.78, 0.75, 1.0), 0.1, False, 0),
    "M_IrisLeft": ("iris", "eye", (0.10, 0.06, 0.03, 1.0), 0.1, False, 0),
    "M_ScleraRight": ("sclera", "eye", (0.80, 0.78, 0.75, 1.0), 0.1, False, 0),
    "M_IrisRight": ("iris", "eye", (0.10, 0.06, 0.03, 1.0), 0.1, False, 0),
    "M_LacrimalFluid": ("eye_overlay", "overlay", (1.0, 1.0, 1.0, 0.0), 0.0, False, None),
    "M_EyeBlend": ("eye_overlay", "overlay", (1.0, 1.0, 1.0, 0.0), 0.0, False, 0),
    "M_EyeOcclusion": ("eye_overlay", "overlay", (1.0, 1.0, 1.0, 0.0), 0.0, False, 0),
    "M_EyeLashes": ("eyelashes", "hair", (0.02, 0.015, 0.01, 0.0), 0.6, False, 6),  # untextured cards: hidden
}
_CORNEA = Material("cornea", "cornea", (1.0, 1.0, 1.0, 0.0), 0.02, False)  # clear: renderers make it glass
#: Radius (cm) of the clear cornea cap cut from the front of each sclera sphere (the iris shows through it).
_CORNEA_RADIUS_CM = 0.62


def default_ict_path() -> Path:
    """Where ``likeness models install ict`` puts the model."""
    from ..service.models import SPECS

    return SPECS["ict"].path()


def resolve_model_path(path: str | Path | None = None) -> Path:
    """The head-model npz to use: ``path``, else ``$LIKENESS_ICT_MODEL``, else the installed copy."""
    import os

    if path:
        candidate = Path(path).expanduser()
        if candidate.is_dir():
            candidate = candidate / ICT_FILE
        if not candidate.is_file():
            raise ModelMissing(f"The head model file {candidate} does not exist.", ICT_INSTALL_HINT)
        return candidate
    env = os.environ.get("LIKENESS_ICT_MODEL")
    if env:
        return resolve_model_path(env)
    installed = default_ict_path()
    if not installed.is_file():
        raise ModelMissing(f"The ICT head model is not installed (looked for {installed}).", ICT_INSTALL_HINT)
    return installed


def _cut_cornea(a: dict, faces: np.ndarray, face_material: np.ndarray, materials: list[Material]) -> np.ndarray:
    """Give the front cap of each sclera sphere a clear "cornea" material so the iris sphere shows through.

    ICT's sclera mesh is a full sphere around the iris sphere; without its (textured) transparency an opaque
    sclera would hide the iris.
    """
    sclera = materials.index(next(m for m in materials if m.name == "sclera"))
    materials.append(_CORNEA)
    out = face_material.copy()
    neutral = a["neutral"]
    for start, stop in (s for n, s in zip(a["subregion_names"], a["subregion_face_slice"]) if "sclera" in str(n)):
        polys = faces[start:stop]
        centres = np.where(polys[..., None] >= 0, neutral[np.maximum(polys, 0)], 0).sum(1) / (polys >= 0).sum(1)[:, None]
        eye_centre = neutral[np.unique(polys[polys >= 0])].mean(0)
        offset = centres - eye_centre
        cap = (offset[:, 2] > 0) & (np.hypot(offset[:, 0], offset[:, 1]) < _CORNEA_RADIUS_CM)
        out[start:stop][cap & (face_material[start:stop] == sclera)] = len(materials) - 1
    return out


def load_ict(path: str | Path | None = None) -> HeadModel:
    """Load the ICT Face Model Light from its packed npz (see the model README), converted to metres."""
    path = resolve_model_path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ModelMissing(f"The head model file {path} cannot be read ({exc}).", ICT_INSTALL_HINT) from exc
    required = {"neutral", "identity_basis", "expression_basis", "expression_names", "faces", "faces_uv", "uv",
                "material_names", "material_face_slice", "landmarks_multipie68", "region_names",
                "region_vertex_slice"}
    missing = sorted(required - set(a))
    if missing:
        raise ModelMissing(f"The head model file {path} lacks arrays {missing}.", ICT_INSTALL_HINT)

    faces = a["faces"].astype(np.int32)
    faces_uv = a["faces_uv"].astype(np.int32)
    names, slices = list(a["material_names"]), a["material_face_slice"]
    materials: list[Material] = []
    face_material = np.zeros(len(faces), np.int32)
    face_tile = np.zeros(len(faces), np.int32)
    for name, (start, stop) in zip(names, slices):
        ours, kind, color, rough, projected, tile = _ICT_MATERIALS[str(name)]
        index = next((i for i, m in enumerate(materials) if m.name == ours), None)
        if index is None:
            materials.append(Material(ours, kind, color, rough, projected))
            index = len(materials) - 1
        face_material[start:stop] = index
        face_tile[start:stop] = -1 if tile is None else tile

    face_material = _cut_cornea(a, faces, face_material, materials)

    # Wrap the 7-tile UV layout into [0,1] per material (lacrimal tiles 4/5 follow their own u).
    uv = a["uv"].astype(np.float32).copy()
    corner_tile = np.repeat(face_tile, 4).reshape(-1, 4)
    corner_tile = np.where(corner_tile < 0, np.floor(uv[np.maximum(faces_uv, 0), 0]).astype(np.int32), corner_tile)
    valid = faces_uv >= 0
    uv_tile = np.zeros(len(uv), np.int32)
    uv_tile[faces_uv[valid]] = corner_tile[valid]
    uv[:, 0] -= uv_tile
    np.clip(uv, 0.0, 1.0, out=uv)

    regions = {str(n): tuple(int(v) for v in s) for n, s in zip(a["region_names"], a["region_vertex_slice"])}
    license_file = path.parent / "LICENSE"
    license_text = license_file.read_text() if license_file.is_file() else str(a.get("license", "MIT"))
    cm = 0.01
    return HeadModel(
        name="ict_facekit_light",
        neutral=a["neutral"].astype(np.float32) * cm,
        identity_basis=a["identity_basis"].astype(np.float32) * cm,
        expression_basis=a["expression_basis"].astype(np.float32) * cm,
        expression_names=tuple(str(n) for n in a["expression_names"]),
        faces=faces,
        faces_uv=faces_uv,
        uv=uv,
        face_material=face_material,
        materials=tuple(materials),
        landmarks_68=a["landmarks_multipie68"].astype(np.int32),
        face_vertex_count=regions["face"][1],
        eyeball_vertices={"L": regions["eyeball_left"], "R": regions["eyeball_right"]},
        license_name="MIT",
        license_text=license_text,
    )
