"""FLAME (Li, Bolkart, Black, Li, Romero: SIGGRAPH Asia 2017; MPI-IS), a second head model, supplied by the user.

FLAME is free for non-commercial research after registration at https://flame.is.tue.mpg.de; Likeness never
downloads it. ``likeness models install flame --from PATH`` reads the user's ``generic_model.pkl`` (FLAME 2020;
FLAME 2023's pickle has the same keys) through the restricted unpickler (:mod:`likeness.model.safe_pickle`: chumpy
arrays become NumPy, nothing is executed), checks every array, and stores plain arrays in ``flame_model.npz``.
Optional files found beside it are taken along: the UV layout of FLAME's texture space (``FLAME_texture.npz``:
``vt``/``ft``, or an OBJ with ``vt`` lines such as ``head_template_mesh.obj``), SMIRK's eyelid offsets
(``l_eyelid.npy``, ``r_eyelid.npy``) and the 68-point landmark embedding (``landmark_embedding.npy``, as in
DECA and SMIRK).

The model: ``template + shapedirs·shape + exprdirs·expression``, then pose correctives and linear blend skinning
over five joints (global, neck, jaw, left eye, right eye: :data:`JOINTS`) as in FLAME's reference code, then
SMIRK's eyelid offsets. Units metres; FLAME's frame is ours (+Y up, +Z out of the face, +X the subject's left).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput, ModelMissing
from ..paths import models_dir

FLAME_FOLDER, FLAME_FILE = "flame", "flame_model.npz"  # under models_dir(), as `likeness models install` puts it
JOINTS = ("global", "neck", "jaw", "eye_L", "eye_R")
N_SHAPE = 300  # the first 300 columns of shapedirs are identity, the rest expression (100 in FLAME 2020)
LICENSE_NOTE = """FLAME (https://flame.is.tue.mpg.de), Max Planck Institute for Intelligent Systems.
Supplied by the user of Likeness. FLAME is licensed for NON-COMMERCIAL scientific research only, under the
licence the user accepted when registering to download it; that licence governs this model and every mesh
derived from it. Likeness does not redistribute FLAME.
"""
INSTALL_HINT = ("Register at https://flame.is.tue.mpg.de, download FLAME 2020, and install it with "
                "`likeness models install flame --from PATH/TO/generic_model.pkl`.")
SIDE_FILES = ("FLAME_texture.npz", "head_template_mesh.obj", "head_template.obj", "l_eyelid.npy", "r_eyelid.npy",
              "landmark_embedding.npy")


@dataclass(frozen=True, eq=False)
class Flame:
    """FLAME's arrays (float64), ready for :meth:`vertices`."""

    template: np.ndarray  # (V,3)
    shapedirs: np.ndarray  # (V,3,S) identity
    exprdirs: np.ndarray  # (V,3,E) expression
    posedirs: np.ndarray  # (9·(J−1), V·3) pose correctives
    j_regressor: np.ndarray  # (J,V)
    parents: np.ndarray  # (J,) int, −1 for the root
    weights: np.ndarray  # (V,J) skinning weights
    faces: np.ndarray  # (F,3) int32, CCW from outside
    uv: np.ndarray | None = None  # (T,2) FLAME texture space, v up
    faces_uv: np.ndarray | None = None  # (F,3) into uv
    eyelids: np.ndarray | None = None  # (2,V,3) SMIRK's offsets: [left, right] lid closed at weight 1
    lmk_faces: np.ndarray | None = None  # (68,) triangle per iBUG landmark
    lmk_bary: np.ndarray | None = None  # (68,3) barycentric coordinates
    license_text: str = LICENSE_NOTE

    @property
    def vertex_count(self) -> int:
        return len(self.template)

    def shaped(self, shape=None, expression=None) -> np.ndarray:
        """``template + shapedirs·shape + exprdirs·expression`` (V,3), missing coefficients zero."""
        verts = self.template.copy()
        if shape is not None and len(shape):
            verts += self.shapedirs[..., :len(shape)] @ np.asarray(shape, np.float64)
        if expression is not None and len(expression):
            verts += self.exprdirs[..., :len(expression)] @ np.asarray(expression, np.float64)
        return verts

    def joints(self, shaped: np.ndarray) -> np.ndarray:
        return self.j_regressor @ shaped

    def vertices(self, shape=None, expression=None, pose=None, eyelids=None) -> np.ndarray:
        """Posed vertices (V,3): ``pose`` is (J·3,) axis-angle per joint of :data:`JOINTS` (SMIRK's order:
        global, neck, jaw, eyes), ``eyelids`` SMIRK's two lid weights."""
        verts = self.shaped(shape, expression)
        if pose is not None and np.any(pose):
            verts = self.skin(verts, np.asarray(pose, np.float64).reshape(-1, 3))
        if eyelids is not None and self.eyelids is not None:
            verts = verts + np.tensordot(np.asarray(eyelids, np.float64), self.eyelids, axes=1)
        return verts

    def skin(self, shaped: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Pose correctives and linear blend skinning of ``shaped`` (V,3) by ``pose`` (J,3)."""
        count = len(self.parents)
        pose = np.vstack([pose, np.zeros((count - len(pose), 3))])[:count]
        rot = rodrigues(pose)
        joints = self.joints(shaped)
        posed = shaped + ((rot[1:] - np.eye(3)).ravel() @ self.posedirs).reshape(-1, 3)
        local = np.tile(np.eye(4), (count, 1, 1))
        local[:, :3, :3] = rot
        local[:, :3, 3] = joints - np.where(self.parents[:, None] >= 0, joints[np.maximum(self.parents, 0)], 0)
        world = local.copy()
        for j in range(1, count):  # five joints: the chain, not the vertices
            world[j] = world[self.parents[j]] @ local[j]
        world[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)
        per_vertex = (self.weights @ world.reshape(count, 16)).reshape(-1, 4, 4)
        return np.einsum("vab,vb->va", per_vertex[:, :3, :3], posed) + per_vertex[:, :3, 3]

    def landmark_points(self, verts: np.ndarray) -> np.ndarray | None:
        """The 68 iBUG landmarks (68,3) on ``verts`` from the landmark embedding, or None without one."""
        if self.lmk_faces is None:
            return None
        return np.einsum("lk,lkd->ld", self.lmk_bary, verts[self.faces[self.lmk_faces]])


def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (N,3,3) for axis-angle vectors (N,3)."""
    angle = np.linalg.norm(axis_angle, axis=1, keepdims=True)
    axis = axis_angle / np.maximum(angle, 1e-12)
    x, y, z = axis.T
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).reshape(-1, 3, 3)
    s, c = np.sin(angle)[:, :, None], np.cos(angle)[:, :, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


# Reading the user's files -------------------------------------------------------------------------------------

def _array(data: dict, key: str, source: str, ndim: int) -> np.ndarray:
    if key not in data:
        raise BadInput(f"{source} has no '{key}': it is not a FLAME model.", INSTALL_HINT)
    value = data[key]
    if hasattr(value, "toarray"):  # scipy sparse (J_regressor)
        value = value.toarray()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{source}: '{key}' is not numeric ({type(value).__name__}).", INSTALL_HINT) from exc
    if array.ndim != ndim or not np.isfinite(array).all():
        raise BadInput(f"{source}: '{key}' has shape {list(array.shape)}; FLAME's has {ndim} dimensions and "
                       "finite values.", INSTALL_HINT)
    return array


def from_pickle_dict(data: dict, source: str) -> dict[str, np.ndarray]:
    """The arrays of :data:`FLAME_FILE` from an unpickled FLAME dict, every shape checked (message names the key)."""
    if not isinstance(data, dict):
        raise BadInput(f"{source} holds a {type(data).__name__}, not FLAME's dict of arrays.", INSTALL_HINT)
    template = _array(data, "v_template", source, 2)
    count = len(template)
    dirs = _array(data, "shapedirs", source, 3)
    posedirs = _array(data, "posedirs", source, 3)
    regressor = _array(data, "J_regressor", source, 2)
    weights = _array(data, "weights", source, 2)
    kintree = _array(data, "kintree_table", source, 2)
    faces = _array(data, "f", source, 2)
    joints = len(regressor)
    checks = [("v_template", template.shape[1] == 3), ("shapedirs", dirs.shape[:2] == (count, 3)
              and dirs.shape[2] > N_SHAPE), ("J_regressor", regressor.shape == (joints, count) and joints >= 3),
              ("posedirs", posedirs.shape == (count, 3, 9 * (joints - 1))),
              ("weights", weights.shape == (count, joints)),
              ("kintree_table", kintree.shape == (2, joints)), ("f", faces.shape[1] == 3 and faces.min() >= 0
              and faces.max() < count and np.array_equal(faces, np.round(faces)))]
    for key, ok in checks:
        if not ok:
            raise BadInput(f"{source}: '{key}' has shape {list(np.shape(data[key]))}, which does not fit FLAME "
                           f"with {count} vertices and {joints} joints.", INSTALL_HINT)
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, joints)):
        raise BadInput(f"{source}: 'kintree_table' does not describe a joint tree.", INSTALL_HINT)
    return {"template": template.astype(np.float32), "shapedirs": dirs[..., :N_SHAPE].astype(np.float32),
            "exprdirs": dirs[..., N_SHAPE:].astype(np.float32),
            "posedirs": posedirs.reshape(-1, posedirs.shape[-1]).T.astype(np.float32),
            "j_regressor": regressor.astype(np.float32), "parents": parents.astype(np.int32),
            "weights": weights.astype(np.float32), "faces": faces.astype(np.int32)}


def _side_file(folders: list[Path], name: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, *sorted(folder.glob(f"*/{name}"))):
            if candidate.is_file():
                return candidate
    return None


def read_side_files(folders: list[Path], count: int, faces: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Optional arrays found in ``folders`` (UVs, eyelids, landmark embedding), with what was used."""
    from .safe_pickle import loads

    out, used = {}, []
    if (tex := _side_file(folders, "FLAME_texture.npz")) is not None:
        try:
            with np.load(tex, allow_pickle=False) as z:
                out["uv"], out["faces_uv"] = z["vt"].astype(np.float32), z["ft"].astype(np.int32)
        except (OSError, ValueError, KeyError) as exc:
            raise BadInput(f"{tex} is not FLAME's texture space (vt, ft): {exc}.", INSTALL_HINT) from exc
        used.append(tex.name)
    elif (obj := _side_file(folders, "head_template_mesh.obj") or _side_file(folders, "head_template.obj")):
        out["uv"], out["faces_uv"] = _obj_uv(obj)
        used.append(obj.name)
    if "uv" in out and (out["faces_uv"].shape != (faces, 3) or out["faces_uv"].max() >= len(out["uv"])):
        raise BadInput(f"The UV layout in {used[-1]} does not fit this FLAME ({faces} faces).", INSTALL_HINT)
    lids = [_side_file(folders, f"{s}_eyelid.npy") for s in "lr"]
    if all(lids):
        out["eyelids"] = np.stack([np.load(p, allow_pickle=False).reshape(-1, 3) for p in lids]).astype(np.float32)
        if out["eyelids"].shape != (2, count, 3):
            raise BadInput(f"{lids[0]} does not hold one offset per FLAME vertex ({count}×3).", INSTALL_HINT)
        used += [p.name for p in lids]
    if (emb := _side_file(folders, "landmark_embedding.npy")) is not None:
        raw = emb.read_bytes()
        with open(emb, "rb") as fh:  # an object .npy: header, then a pickle (read with the restricted unpickler)
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            _, _, dtype = read(fh)
            offset = fh.tell()
        data = loads(raw[offset:], emb.name) if dtype.hasobject else None
        data = data.item() if isinstance(data, np.ndarray) and data.dtype.hasobject else data
        if not isinstance(data, dict) or "full_lmk_faces_idx" not in data:
            raise BadInput(f"{emb} has no 'full_lmk_faces_idx'.", "Use DECA's or SMIRK's landmark_embedding.npy.")
        out["lmk_faces"] = np.asarray(data["full_lmk_faces_idx"]).reshape(-1).astype(np.int32)
        out["lmk_bary"] = np.asarray(data["full_lmk_bary_coords"]).reshape(-1, 3).astype(np.float32)
        if out["lmk_faces"].shape != (68,) or out["lmk_faces"].max() >= faces:
            raise BadInput(f"{emb}: 'full_lmk_faces_idx' is not 68 faces of this FLAME.", INSTALL_HINT)
        used.append(emb.name)
    return out, used


def _obj_uv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    uv, faces = [], []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("vt "):
            uv.append([float(v) for v in line.split()[1:3]])
        elif line.startswith("f "):
            faces.append([int(c.split("/")[1]) - 1 for c in line.split()[1:4]])
    if not uv or not faces:
        raise BadInput(f"{path} has no texture coordinates.", INSTALL_HINT)
    return np.array(uv, np.float32), np.array(faces, np.int32)


def installed_path() -> Path:
    """Where ``likeness models install flame`` puts FLAME (plain arrays, ``flame_model.npz``)."""
    return models_dir() / FLAME_FOLDER / FLAME_FILE


def load(path: str | Path | None = None) -> Flame:
    """The installed FLAME (``flame_model.npz``, plain arrays, no pickle) or the one at ``path``."""
    if path is None:
        path = installed_path()
    path = Path(path)
    if path.is_dir():
        path = path / FLAME_FILE
    if not path.is_file():
        raise ModelMissing(f"FLAME is not installed (looked for {path}).", INSTALL_HINT)
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ModelMissing(f"{path} cannot be read ({exc}).", INSTALL_HINT) from exc
    f64 = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in a.items()}
    license_file = path.parent / "LICENSE"
    return Flame(**{k: f64.get(k) for k in ("template", "shapedirs", "exprdirs", "posedirs", "j_regressor",
                                            "parents", "weights", "faces", "uv", "faces_uv", "eyelids",
                                            "lmk_faces", "lmk_bary")},
                 license_text=license_file.read_text() if license_file.is_file() else LICENSE_NOTE)
