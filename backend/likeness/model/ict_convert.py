"""Convert an upstream ICT-FaceKit checkout (OBJ files + ``vertex_indices.json``) into the packed npz layout.

The output matches ``ict_face_model.npz`` as described in the model README: **centimetres**, +Y up, +Z out of
the face, +X the subject's own left; identity and expression shapes are deltas ``shape.obj − neutral``
computed in float64 from the OBJ text and stored as float32. Only public facts (file names, JSON keys and
the region/jawline tables of the upstream README) are used; no upstream code.

The OBJ reader works on the raw bytes with NumPy (no per-vertex Python loops): it selects the lines that
start with a keyword (``v``, ``vt``, ``f``, ``usemtl``), gathers them into one buffer and parses all numbers
in one call. Identity and expression files are read one at a time, vertices only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import BadInput

SOURCE_REPO = "ICT-VGL/ICT-FaceKit"
SOURCE_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
LICENSE_SUMMARY = "MIT, Copyright (c) 2020 USC Institute for Creative Technologies"
LICENSE_TEXT = """MIT License

Copyright (c) 2020 USC Institute for Creative Technologies

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

MODEL_FOLDER = "FaceXModel"
NEUTRAL_OBJ = "generic_neutral_mesh.obj"
INDEX_JSON = "vertex_indices.json"

# OBJs present upstream but not in vertex_indices.json's "expressions" list.
EXTRA_EXPRESSIONS = ("cheekRaiser_L", "cheekRaiser_R", "PupilDilate_L", "PupilDilate_R")

# Upstream README "Face Model Topology": (name, vertex [start, stop), face [start, stop)), half-open
# (the README writes inclusive [first:last]).
REGIONS = (
    ("face", (0, 9409), (0, 9230)),
    ("head_and_neck", (9409, 11248), (9230, 11144)),
    ("mouth_socket", (11248, 13294), (11144, 13226)),
    ("eye_socket_left", (13294, 13678), (13226, 13630)),
    ("eye_socket_right", (13678, 14062), (13630, 14034)),
    ("gums_and_tongue", (14062, 17039), (14034, 17006)),
    ("teeth", (17039, 21451), (17006, 21496)),
    ("eyeball_left", (21451, 23021), (21496, 23094)),
    ("eyeball_right", (23021, 24591), (23094, 24692)),
    ("lacrimal_fluid_left", (24591, 24795), (24692, 24855)),
    ("lacrimal_fluid_right", (24795, 24999), (24855, 25018)),
    ("eye_blend_left", (24999, 25023), (25018, 25033)),
    ("eye_blend_right", (25023, 25047), (25033, 25048)),
    ("eye_occlusion_left", (25047, 25199), (25048, 25176)),
    ("eye_occlusion_right", (25199, 25351), (25176, 25304)),
    ("eyelashes_left", (25351, 26035), (25304, 25844)),
    ("eyelashes_right", (26035, 26719), (25844, 26384)),
)
# Upstream README "Face Area Details" and "Eyeball Details", half-open.
SUBREGIONS = (
    ("face_narrow", (0, 6706), (0, 6560)),
    ("sclera_left", (21451, 22221), (21496, 22296)),
    ("iris_left", (22221, 23021), (22296, 23094)),
    ("sclera_right", (23021, 23791), (23094, 23894)),
    ("iris_right", (23791, 24591), (23894, 24692)),
)
# Upstream README "Facial Landmarks": vertex candidates for the image jawline.
JAWLINES = {
    "jawline_right": (1278, 1272, 12, 1834, 243, 781, 2199, 1447),
    "jawline_left": (3661, 4390, 3022, 2484, 4036, 2253, 3490, 3496),
    "jawline_right_extended": (1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199,
                               801, 1447, 800),
    "jawline_left_extended": (3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466,
                              3490, 3493, 3496, 3498),
}
# npz key -> vertex_indices.json key.
INDEX_KEYS = {
    "landmarks_multipie68": "idx_to_landmark_verts",
    "landmarks_rigid_subset": "idx_to_rigid_landmark_idx",
    "fitting_vertex_indices": "idx_to_fitting_verts",
    "rigid_vertex_indices": "idx_to_rigid_verts",
    "lap_rigid_vertex_indices": "idx_to_lap_rigid_verts",
}
# Apple ARKit's 52 blendshapes, spelled the ICT way (_L/_R = subject's left/right).
ARKIT52 = (
    "browDown_L", "browDown_R", "browInnerUp", "browOuterUp_L", "browOuterUp_R", "cheekPuff", "cheekSquint_L",
    "cheekSquint_R", "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L",
    "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L", "noseSneer_R", "tongueOut",
)

# The packed layout, in archive order: key -> (shape with symbolic sizes, dtype: "f4", "i4" or "U").
LAYOUT: dict[str, tuple[tuple, str]] = {
    "neutral": (("V", 3), "f4"),
    "faces": (("F", 4), "i4"),
    "faces_uv": (("F", 4), "i4"),
    "uv": (("T", 2), "f4"),
    "identity_names": (("K",), "U"),
    "identity_basis": (("K", "V", 3), "f4"),
    "identity_mode_norm": (("K",), "f4"),
    "expression_names": (("E",), "U"),
    "expression_basis": (("E", "V", 3), "f4"),
    "extra_expression_names": (("X",), "U"),
    "extra_expression_basis": (("X", "V", 3), "f4"),
    "landmarks_multipie68": ((68,), "i4"),
    "landmarks_rigid_subset": (("L",), "i4"),
    **{key: ((len(v),), "i4") for key, v in JAWLINES.items()},
    "fitting_vertex_indices": (("N1",), "i4"),
    "rigid_vertex_indices": (("N2",), "i4"),
    "lap_rigid_vertex_indices": (("N3",), "i4"),
    "region_names": (("R",), "U"),
    "region_vertex_slice": (("R", 2), "i4"),
    "region_face_slice": (("R", 2), "i4"),
    "subregion_names": (("S",), "U"),
    "subregion_vertex_slice": (("S", 2), "i4"),
    "subregion_face_slice": (("S", 2), "i4"),
    "material_names": (("M",), "U"),
    "material_face_slice": (("M", 2), "i4"),
    "arkit52_names": ((52,), "U"),
    "arkit52_to_expression": ((52, "E"), "f4"),
    "units": ((), "U"),
    "source_repo": ((), "U"),
    "source_commit": ((), "U"),
    "license": ((), "U"),
}


def layout_problems(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """What keeps ``arrays`` from matching :data:`LAYOUT` (missing keys, wrong dtypes, inconsistent shapes)."""
    problems: list[str] = []
    sizes: dict[str, int] = {}
    for key, (shape, dtype) in LAYOUT.items():
        if key not in arrays:
            problems.append(f"missing array {key!r}")
            continue
        a = arrays[key]
        if (a.dtype.kind if dtype == "U" else a.dtype.str[1:]) != dtype:
            problems.append(f"{key!r} has dtype {a.dtype}, expected {'unicode' if dtype == 'U' else dtype}")
        if a.ndim != len(shape):
            problems.append(f"{key!r} has shape {a.shape}, expected {len(shape)} dimensions")
            continue
        for dim, want in zip(a.shape, shape):
            expected = sizes.setdefault(want, dim) if isinstance(want, str) else want
            if dim != expected:
                problems.append(f"{key!r} has shape {a.shape}; size {dim} disagrees with {want}={expected}")
    return problems


def convert_checkout(root: Path) -> dict[str, np.ndarray]:
    """Pack an upstream checkout (its root, or its ``FaceXModel`` folder) into the npz layout, in cm."""
    folder = _model_folder(Path(root))
    index = _read_index(folder / INDEX_JSON)
    neutral64, uv, faces, faces_uv, materials = read_obj_mesh(folder / NEUTRAL_OBJ)
    n_vertices = len(neutral64)

    identity_files = sorted(folder.glob("identity[0-9][0-9][0-9].obj"))
    if not identity_files:
        raise BadInput(f"No identityNNN.obj files in {folder}.", "Point to a complete ICT-FaceKit checkout.")
    expression_names = [str(n) for n in index["expressions"]]
    identity_basis = _deltas(identity_files, neutral64)
    norms = np.linalg.norm(identity_basis.reshape(len(identity_basis), -1).astype(np.float64), axis=1)

    out: dict[str, np.ndarray] = {
        "neutral": neutral64.astype(np.float32),
        "faces": faces,
        "faces_uv": faces_uv,
        "uv": uv,
        "identity_names": np.array([p.stem for p in identity_files]),
        "identity_basis": identity_basis,
        "identity_mode_norm": norms.astype(np.float32),
        "expression_names": np.array(expression_names),
        "expression_basis": _deltas([folder / f"{n}.obj" for n in expression_names], neutral64),
        "extra_expression_names": np.array(EXTRA_EXPRESSIONS),
        "extra_expression_basis": _deltas([folder / f"{n}.obj" for n in EXTRA_EXPRESSIONS], neutral64),
        **{key: np.array(v, np.int32) for key, v in JAWLINES.items()},
        **{key: _index_list(index, json_key) for key, json_key in INDEX_KEYS.items()},
        **_table_arrays("region", REGIONS),
        **_table_arrays("subregion", SUBREGIONS),
        "material_names": np.array([name for name, _ in materials]),
        "material_face_slice": np.array([span for _, span in materials], np.int32),
        "arkit52_names": np.array(ARKIT52),
        "arkit52_to_expression": arkit_matrix(ARKIT52, expression_names),
        "units": np.array("cm"),
        "source_repo": np.array(SOURCE_REPO),
        "source_commit": np.array(SOURCE_COMMIT),
        "license": np.array(LICENSE_SUMMARY),
    }
    _check_indices(out, n_vertices)
    return {key: out[key] for key in LAYOUT}


def arkit_matrix(arkit_names: tuple[str, ...], expression_names: list[str]) -> np.ndarray:
    """(A,E) 0/1 float32: ARKit shape ``a`` drives expression ``e`` if ``e == a`` or ``e`` is ``a_L``/``a_R``."""
    a = np.array(arkit_names)[:, None]
    e = np.array(expression_names)[None, :]
    halves = (np.char.add(a, "_L") == e) | (np.char.add(a, "_R") == e)
    return ((a == e) | halves).astype(np.float32)


def read_obj_mesh(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[str, tuple]]]:
    """Vertices (V,3) float64, uv (T,2) float32, faces and faces_uv (F,4) int32 (0-based, −1 pads triangles)
    and the ``usemtl`` groups as ``[(name, (first_face, stop_face)), ...]`` from one OBJ file."""
    buf = _read_bytes(path)
    lines = _line_bounds(buf)
    vertices = _parse_rows(buf, *_select(buf, lines, b"v "), 2, np.float64, path, "v")[:, :3]
    uv = _parse_rows(buf, *_select(buf, lines, b"vt "), 3, np.float64, path, "vt")[:, :2].astype(np.float32)
    face_starts, face_stops = _select(buf, lines, b"f ")
    faces, faces_uv = _parse_faces(buf, face_starts, face_stops, path)
    if faces.size and (faces.max() >= len(vertices) or faces_uv.max() >= len(uv) or
                       (faces[:, :3] < 0).any() or (faces_uv[:, :3] < 0).any()):
        raise BadInput(f"{path} has face indices outside its {len(vertices)} vertices / {len(uv)} UVs.")
    mtl_starts, mtl_stops = _select(buf, lines, b"usemtl ")
    names = [buf[s:e].tobytes().decode("utf-8", "replace").strip() for s, e in zip(mtl_starts, mtl_stops)]
    first_faces = np.searchsorted(face_starts, mtl_starts)
    return vertices, uv, faces, faces_uv, _material_spans(names, first_faces, len(faces), path)


def read_obj_vertices(path: Path) -> np.ndarray:
    """Only the ``v`` records of an OBJ file: (V,3) float64 in the file's units."""
    buf = _read_bytes(path)
    return _parse_rows(buf, *_select(buf, _line_bounds(buf), b"v "), 2, np.float64, path, "v")[:, :3]


# ---------------------------------------------------------------------------------------------------------

def _model_folder(root: Path) -> Path:
    for folder in (root / MODEL_FOLDER, root):
        if (folder / NEUTRAL_OBJ).is_file():
            return folder
    raise BadInput(f"{root} is not an ICT-FaceKit checkout (no {MODEL_FOLDER}/{NEUTRAL_OBJ}).",
                   f"Point to the folder of a clone or unpacked archive of {SOURCE_REPO}.")


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"Cannot read {path} ({exc}).", "Point to a complete ICT-FaceKit checkout.") from exc
    missing = [k for k in ("expressions", *INDEX_KEYS.values()) if k not in index]
    if missing:
        raise BadInput(f"{path} lacks the keys {missing}.", "Point to a complete ICT-FaceKit checkout.")
    return index


def _index_list(index: dict, key: str) -> np.ndarray:
    """One flat list of integers from vertex_indices.json as int32."""
    try:
        values = np.array(index[key], np.int64)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{INDEX_JSON}: '{key}' is not a list of integers ({exc}).") from exc
    if values.ndim != 1:
        raise BadInput(f"{INDEX_JSON}: '{key}' is not a flat list of integers.")
    return values.astype(np.int32)


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.frombuffer(path.read_bytes(), np.uint8)
    except OSError as exc:
        raise BadInput(f"Cannot read {path} ({exc.strerror or exc}).",
                       "Point to a complete ICT-FaceKit checkout.") from exc


def _deltas(paths: list[Path], neutral64: np.ndarray) -> np.ndarray:
    """(len(paths),V,3) float32 deltas ``obj − neutral``, subtracted in float64; one file in memory at a time."""
    out = np.empty((len(paths), *neutral64.shape), np.float32)
    for i, path in enumerate(paths):
        vertices = read_obj_vertices(path)
        if vertices.shape != neutral64.shape:
            raise BadInput(f"{path} has {len(vertices)} vertices; the neutral mesh has {len(neutral64)}.")
        out[i] = vertices - neutral64
    return out


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets [start, stop) of every line (stop is the newline or the end of the buffer)."""
    newlines = np.flatnonzero(buf == ord("\n"))
    return np.r_[0, newlines + 1], np.r_[newlines, len(buf)]


def _select(buf: np.ndarray, lines: tuple[np.ndarray, np.ndarray], keyword: bytes) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) of the payload (after ``keyword``) of the lines that begin with ``keyword``."""
    starts, stops = lines
    ok = stops - starts >= len(keyword)
    for i, char in enumerate(keyword):
        ok[ok] = buf[starts[ok] + i] == char
    return starts[ok] + len(keyword), stops[ok]


def _gather(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray, skip: int) -> np.ndarray:
    """The payload bytes [start, stop) of the selected lines, each ended by a newline, as one uint8 array.

    ``skip`` is the keyword length. Fast path: when the lines are consecutive in the file (as ``v`` lines
    are), one slice with the keywords blanked; otherwise a byte mask built from the range ends."""
    n = len(buf)
    if np.array_equal(starts[1:] - skip, stops[:-1] + 1):
        text = buf[starts[0]:min(stops[-1] + 1, n)].copy()
        text[((starts[1:] - starts[0])[:, None] - np.arange(1, skip + 1)).ravel()] = ord(" ")
    else:
        marks = np.bincount(starts, minlength=n + 1) - np.bincount(np.minimum(stops + 1, n), minlength=n + 1)
        text = buf[np.cumsum(marks[:n]) > 0]
    return text if text.size and text[-1] == ord("\n") else np.r_[text, np.uint8(ord("\n"))]


def _tokens_per_line(text: np.ndarray) -> np.ndarray:
    """Number of whitespace-separated tokens on each newline-terminated line of ``text``."""
    space = text <= ord(" ")
    first = ~space
    first[1:] &= space[:-1]
    line_starts = np.r_[0, np.flatnonzero(text == ord("\n"))[:-1] + 1]
    return np.add.reduceat(first, line_starts, dtype=np.int64)


def _numbers(text: np.ndarray, dtype: type, path: Path, what: str) -> np.ndarray:
    """All whitespace-separated numbers in ``text`` (correctly rounded, like ``float()``/``int()``)."""
    cast = float if dtype is np.float64 else int
    try:
        return np.fromiter(map(cast, text.tobytes().split()), dtype)
    except ValueError as exc:
        raise BadInput(f"{path}: malformed '{what}' records ({exc}).") from exc


def _parse_rows(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray, skip: int, dtype: type, path: Path,
                what: str) -> np.ndarray:
    """All ``what`` records as an (N, columns) array; every record must have the same number of values."""
    if len(starts) == 0:
        raise BadInput(f"{path} has no '{what}' records.", "Point to a complete ICT-FaceKit checkout.")
    text = _gather(buf, starts, stops, skip)
    counts = _tokens_per_line(text)
    minimum = 3 if what == "v" else 2
    if counts.min() != counts.max() or counts[0] < minimum:
        raise BadInput(f"{path}: malformed '{what}' records (expected {minimum} or more numbers on each).")
    return _numbers(text, dtype, path, what).reshape(len(starts), counts[0])


def _parse_faces(buf: np.ndarray, starts: np.ndarray, stops: np.ndarray, path: Path) -> tuple[np.ndarray, ...]:
    """``f v/vt ...`` or ``f v/vt/vn ...`` polygons of 3 or 4 corners -> faces, faces_uv (F,4) int32, 0-based."""
    if len(starts) == 0:
        raise BadInput(f"{path} has no faces.", "Point to a complete ICT-FaceKit checkout.")
    text = _gather(buf, starts, stops, len(b"f "))
    slash = text == ord("/")
    corners = _tokens_per_line(text)
    per_corner = int(np.count_nonzero(slash)) // max(int(corners.sum()), 1) + 1
    slashes = np.add.reduceat(slash, np.r_[0, np.flatnonzero(text == ord("\n"))[:-1] + 1], dtype=np.int64)
    if (corners.min() < 3 or corners.max() > 4 or per_corner not in (2, 3)
            or (slashes != corners * (per_corner - 1)).any() or (slash[:-1] & slash[1:]).any()):
        raise BadInput(f"{path}: faces must be triangles or quads written as v/vt or v/vt/vn.")
    text[slash] = ord(" ")
    values = _numbers(text, np.int64, path, "f").reshape(-1, per_corner) - 1
    rows = np.repeat(np.arange(len(starts)), corners)
    columns = np.arange(len(rows)) - np.repeat(np.cumsum(corners) - corners, corners)
    faces = np.full((len(starts), 4), -1, np.int32)
    faces_uv = np.full((len(starts), 4), -1, np.int32)
    faces[rows, columns] = values[:, 0]
    faces_uv[rows, columns] = values[:, 1]
    return faces, faces_uv


def _material_spans(names: list[str], first_faces: np.ndarray, n_faces: int,
                    path: Path) -> list[tuple[str, tuple[int, int]]]:
    """Contiguous ``usemtl`` groups as (name, (first_face, stop_face)); every face must have a material."""
    bounds = np.r_[first_faces, n_faces]
    spans: list[tuple[str, tuple[int, int]]] = []
    for name, start, stop in zip(names, bounds[:-1], bounds[1:]):
        if stop == start:
            continue
        if spans and spans[-1][0] == name:
            spans[-1] = (name, (spans[-1][1][0], int(stop)))
        elif any(name == seen for seen, _ in spans):
            raise BadInput(f"{path}: material {name!r} is used in more than one block of faces.")
        else:
            spans.append((name, (int(start), int(stop))))
    if not spans or spans[0][1][0] != 0:
        raise BadInput(f"{path}: faces before the first 'usemtl' line.")
    return spans


def _table_arrays(prefix: str, table: tuple) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_names": np.array([name for name, _, _ in table]),
        f"{prefix}_vertex_slice": np.array([v for _, v, _ in table], np.int32),
        f"{prefix}_face_slice": np.array([f for _, _, f in table], np.int32),
    }


def _check_indices(arrays: dict[str, np.ndarray], n_vertices: int) -> None:
    """Vertex index lists must point into the mesh, and the rigid subset into the 68 landmarks."""
    limits = {key: n_vertices for key in (*JAWLINES, *INDEX_KEYS)}
    limits["landmarks_rigid_subset"] = 68
    limits["region_vertex_slice"] = limits["subregion_vertex_slice"] = n_vertices + 1
    limits["region_face_slice"] = limits["subregion_face_slice"] = len(arrays["faces"]) + 1
    for key, limit in limits.items():
        a = arrays[key]
        if a.size and (a.min() < 0 or a.max() >= limit):
            raise BadInput(f"{key} in the checkout has indices outside [0, {limit}).",
                           "The checkout does not match this converter (ICT Face Model Light).")
