"""Read and validate a Likeness bundle (docs/bundle.md, format version 1) without touching Blender.

Everything a bundle refers to is checked here before any Blender data is created: the manifest's format and
version, that every path is relative and stays inside the bundle directory (after resolving symlinks), and
that every array has the documented shape, dtype and index range. Any problem raises
:class:`~.errors.BundleError` with a message and a hint.

Arrays stay in the bundle's own units and axes: metres, head frame (+Y up, +Z out of the face).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from .errors import BundleError

FORMAT = "likeness.bundle"
VERSION = 1
MANIFEST_NAME = "manifest.json"
REINSTALL_HINT = "Run the reconstruction again, or update the Likeness add-on to read newer bundles."
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


@dataclass(frozen=True)
class Photo:
    """One input photo of the bundle: its copy, size in pixels, pinhole camera, pose and expression."""

    path: Path
    width: int
    height: int
    focal_px: float
    principal_point_px: tuple[float, float]
    #: 4x4 rigid transform from the head frame to the OpenGL-style camera frame (metres).
    model_to_camera: np.ndarray
    #: Expression weights in [0, 1], ordered like ``Bundle.expression_names``.
    expression: np.ndarray
    #: How far the fit can be trusted, 0–1 (None in bundles that do not say), and what may be wrong.
    confidence: float | None = None
    warnings: tuple[str, ...] = ()
    #: The photo's light as 2nd-order SH shading coefficients (9, 3), head frame (docs/bundle.md); None if absent.
    light: np.ndarray | None = None


@dataclass(frozen=True)
class Material:
    """A material of the head: linear RGBA ``base_color``, roughness, optional texture files per channel."""

    name: str
    kind: str
    base_color: tuple[float, float, float, float]
    roughness: float
    textures: dict[str, Path]


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: arrays in metres and head-frame axes, absolute paths inside ``root``."""

    root: Path
    manifest: dict[str, Any]
    name: str
    vertices: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 4) int32, -1 in column 3 for triangles
    faces_uv: np.ndarray  # (F, 4) int32
    uv: np.ndarray  # (T, 2) float32
    face_material: np.ndarray  # (F,) int32
    expression_deltas: np.ndarray  # (E, V, 3) float32
    landmarks_68: np.ndarray  # (68,) int32
    expression_names: list[str]
    identity: list[float]
    materials: list[Material]
    photos: list[Photo]
    warnings: list[str]
    #: Linear RGB of the hair the photos showed (manifest ``hair.color``), None when the bundle has no hair.
    hair_color: tuple[float, float, float] | None = None


def resolve_inside(root: Path, relative: Any, what: str) -> Path:
    """Absolute path of ``relative`` (a manifest path) inside the bundle ``root``; it must exist.

    Refuses absolute paths (POSIX or Windows style), ``..`` components, and paths that leave ``root``
    once symlinks are resolved.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise BundleError(f"The bundle's {what} path is missing or not a string.", REINSTALL_HINT)
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or relative.startswith(("/", "\\")):
        raise BundleError(
            f"The bundle's {what} path '{relative}' is absolute; bundle paths must be relative.",
            "The bundle is not a valid Likeness bundle; reconstruct it again.",
        )
    if ".." in posix.parts or ".." in windows.parts:
        raise BundleError(
            f"The bundle's {what} path '{relative}' leaves the bundle folder ('..').",
            "The bundle is not a valid Likeness bundle; reconstruct it again.",
        )
    root_resolved = root.resolve()
    resolved = (root_resolved / posix).resolve()
    if not resolved.is_relative_to(root_resolved):
        raise BundleError(
            f"The bundle's {what} '{relative}' points outside the bundle folder (through a symbolic link).",
            "Bundles must be self-contained; reconstruct it again instead of linking files into it.",
        )
    if not resolved.is_file():
        raise BundleError(f"The bundle's {what} '{relative}' is missing.",
                          "The bundle is incomplete; reconstruct it again.")
    return resolved


def resolve_image(root: Path, relative: Any, what: str) -> Path:
    """:func:`resolve_inside` for an image, which must also start like a PNG or JPEG file.

    Only the signature is read (Blender decodes the pixels later); it catches files replaced or damaged after
    the bundle was written, which Blender would otherwise import as a missing (pink) texture.
    """
    path = resolve_inside(root, relative, what)
    with open(path, "rb") as image:
        head = image.read(8)
    if not head.startswith(_IMAGE_SIGNATURES):
        raise BundleError(f"The bundle's {what} '{relative}' is not a PNG or JPEG image.",
                          "The bundle is damaged; reconstruct it again.")
    return path


def read_manifest(root: Path) -> dict[str, Any]:
    """Parsed ``manifest.json`` of the bundle directory ``root``, with format and version checked."""
    if not root.is_dir():
        raise BundleError(f"'{root}' is not a folder.", "Choose the bundle folder (the one with manifest.json).")
    path = resolve_inside(root, MANIFEST_NAME, "manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"The bundle's manifest.json is not valid JSON ({exc}).", REINSTALL_HINT) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleError(f"'{root}' is not a Likeness bundle (format is {found!r}, expected '{FORMAT}').",
                          "Choose a folder written by Likeness.")
    if manifest.get("version") != VERSION:
        raise BundleError(
            f"The bundle has format version {manifest.get('version')!r}; this add-on reads version {VERSION}.",
            REINSTALL_HINT,
        )
    return manifest


def _field(mapping: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``mapping[key]`` checked to be of ``kind`` (a bool is not accepted as a number)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BundleError(f"The bundle's manifest has no valid '{what}'.", REINSTALL_HINT)
    return value


def _number_list(value: Any, length: int | None, what: str) -> list[float]:
    """``value`` as a list of finite floats (of ``length`` items when given)."""
    ok = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or (length is not None and len(value) != length) or not all(math.isfinite(v) for v in value):
        size = f" of {length} numbers" if length is not None else ""
        raise BundleError(f"The bundle's manifest has no valid '{what}' (expected a list{size}).", REINSTALL_HINT)
    return [float(v) for v in value]


def _count(mesh: dict, key: str) -> int:
    value = _field(mesh, key, int, f"mesh.{key}")
    if value <= 0:
        raise BundleError(f"The bundle's manifest has mesh.{key} = {value}.", REINSTALL_HINT)
    return value


def _read_npy_header(stream: Any, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the header of an .npy member, without reading its data."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f"'{key}' has the unsupported .npy format version {version}")


def _load_arrays(path: Path, expected: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
    """The ``expected`` arrays ``{key: (shape, dtype)}`` of the npz at ``path``, nothing else.

    Each member's .npy header is checked against its expected shape and dtype *before* its data is read, so a
    header claiming a huge array (or pickled objects) is refused without allocating anything; members with
    other names are never decompressed.
    """
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            for key, (shape, dtype) in expected.items():
                if f"{key}.npy" not in members:
                    raise BundleError(f"The bundle's mesh file has no '{key}' array.", REINSTALL_HINT)
                with archive.open(f"{key}.npy") as stream:
                    found_shape, _, found_dtype = _read_npy_header(stream, key)
                if found_dtype.hasobject:
                    raise BundleError(f"The bundle's '{key}' array holds pickled Python objects; bundles never do.",
                                      REINSTALL_HINT)
                if tuple(found_shape) != shape or found_dtype != np.dtype(dtype):
                    raise BundleError(
                        f"The bundle's '{key}' array is {found_dtype}{list(found_shape)}, expected "
                        f"{dtype}{list(shape)}.", REINSTALL_HINT)
                with archive.open(f"{key}.npy") as stream:
                    arrays[key] = np.lib.format.read_array(stream, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise BundleError(f"The bundle's mesh file '{path.name}' cannot be read ({exc}).", REINSTALL_HINT) from exc
    for key, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise BundleError(f"The bundle's '{key}' array contains NaN or infinite values.", REINSTALL_HINT)
    return arrays


def _check_polygons(indices: np.ndarray, limit: int, key: str) -> None:
    """Columns 0-2 in ``[0, limit)``, column 3 in ``[0, limit)`` or -1 (triangle)."""
    quads = indices[:, 3] != -1
    if (indices[:, :3].min(initial=0) < 0 or indices.max(initial=0) >= limit
            or (indices[quads, 3] < 0).any()):
        raise BundleError(f"The bundle's '{key}' array has indices outside [0, {limit}).", REINSTALL_HINT)


def _read_materials(root: Path, manifest: dict) -> list[Material]:
    entries = _field(manifest, "materials", list, "materials")
    if not entries:
        raise BundleError("The bundle's manifest lists no materials.", REINSTALL_HINT)
    materials = []
    for i, entry in enumerate(entries):
        name = _field(entry, "name", str, f"materials[{i}].name")
        textures = entry.get("textures") or {}
        if not isinstance(textures, dict):
            raise BundleError(f"The bundle's material '{name}' has invalid 'textures'.", REINSTALL_HINT)
        materials.append(Material(
            name=name,
            kind=str(entry.get("kind", "")),
            base_color=tuple(_number_list(entry.get("base_color"), 4, f"materials[{i}].base_color")),
            roughness=float(_number_list([entry.get("roughness", 0.5)], 1, f"materials[{i}].roughness")[0]),
            textures={channel: resolve_image(root, rel, f"texture of '{name}'") for channel, rel in textures.items()},
        ))
    return materials


def _read_photo(root: Path, entry: Any, index: int, expression_names: list[str]) -> Photo:
    what = f"photos[{index}]"
    size = _number_list(_field(entry, "image_size", list, f"{what}.image_size"), 2, f"{what}.image_size")
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise BundleError(f"The bundle's {what}.image_size is {size}.", REINSTALL_HINT)
    camera = _field(entry, "camera", dict, f"{what}.camera")
    focal = _number_list([camera.get("focal_px")], 1, f"{what}.camera.focal_px")[0]
    if focal <= 0:
        raise BundleError(f"The bundle's {what}.camera.focal_px is {focal}.", REINSTALL_HINT)
    cx, cy = _number_list(camera.get("principal_point_px"), 2, f"{what}.camera.principal_point_px")
    pose = _field(entry, "pose", dict, f"{what}.pose")
    rows = pose.get("model_to_camera")
    if not (isinstance(rows, list) and len(rows) == 4):
        raise BundleError(f"The bundle's {what}.pose.model_to_camera is not a 4x4 matrix.", REINSTALL_HINT)
    matrix = np.array([_number_list(r, 4, f"{what}.pose.model_to_camera") for r in rows], dtype=np.float64)
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-9:
        raise BundleError(f"The bundle's {what}.pose.model_to_camera is singular.", REINSTALL_HINT)
    weights = _field(entry, "expression", dict, f"{what}.expression")
    unknown = sorted(set(weights) - set(expression_names))
    if unknown:
        raise BundleError(f"The bundle's {what}.expression names unknown expressions {unknown[:3]}.", REINSTALL_HINT)
    expression = np.array(
        _number_list([weights.get(n, 0.0) for n in expression_names], None, f"{what}.expression"), dtype=np.float32)
    fit = entry.get("fit") if isinstance(entry.get("fit"), dict) else {}
    confidence = fit.get("confidence")
    if confidence is not None:
        confidence = min(max(_number_list([confidence], 1, f"{what}.fit.confidence")[0], 0.0), 1.0)
    warnings = entry.get("warnings", [])
    if not (isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)):
        raise BundleError(f"The bundle's {what}.warnings is not a list of texts.", REINSTALL_HINT)
    light = None
    if entry.get("light") is not None:
        rows = _field(entry, "light", dict, f"{what}.light").get("sh")
        if not (isinstance(rows, list) and len(rows) == 9):
            raise BundleError(f"The bundle's {what}.light.sh is not 9 rows of RGB.", REINSTALL_HINT)
        light = np.array([_number_list(r, 3, f"{what}.light.sh") for r in rows], dtype=np.float64)
    return Photo(
        path=resolve_image(root, entry.get("path"), f"photo {index + 1}"),
        width=width, height=height, focal_px=focal, principal_point_px=(cx, cy),
        model_to_camera=matrix, expression=expression, confidence=confidence, warnings=tuple(warnings),
        light=light,
    )


def read_bundle(path: str | Path) -> Bundle:
    """Read and fully validate the bundle in directory ``path`` (or its ``manifest.json``).

    Raises :class:`BundleError` on the first problem found; nothing is returned half-checked.
    """
    root = Path(path)
    if root.name == MANIFEST_NAME and root.is_file():
        root = root.parent
    root = root.resolve()
    manifest = read_manifest(root)
    mesh = _field(manifest, "mesh", dict, "mesh")
    v, f, t = _count(mesh, "vertex_count"), _count(mesh, "face_count"), _count(mesh, "uv_count")
    names = _field(manifest, "expressions", list, "expressions")
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise BundleError("The bundle's expression names are not unique, non-empty strings.", REINSTALL_HINT)
    materials = _read_materials(root, manifest)

    arrays = _load_arrays(resolve_inside(root, mesh.get("file"), "mesh file"), {
        "vertices": ((v, 3), "float32"), "faces": ((f, 4), "int32"), "faces_uv": ((f, 4), "int32"),
        "uv": ((t, 2), "float32"), "face_material": ((f,), "int32"),
        "expression_deltas": ((len(names), v, 3), "float32"), "landmarks_68": ((68,), "int32"),
    })
    vertices, faces, faces_uv, uv = arrays["vertices"], arrays["faces"], arrays["faces_uv"], arrays["uv"]
    face_material, deltas, landmarks = arrays["face_material"], arrays["expression_deltas"], arrays["landmarks_68"]
    _check_polygons(faces, v, "faces")
    _check_polygons(faces_uv, t, "faces_uv")
    if not np.array_equal(faces[:, 3] == -1, faces_uv[:, 3] == -1):
        raise BundleError("The bundle's 'faces' and 'faces_uv' disagree on which polygons are triangles.",
                          REINSTALL_HINT)
    if face_material.min() < 0 or face_material.max() >= len(materials):
        raise BundleError(f"The bundle's 'face_material' has indices outside [0, {len(materials)}).", REINSTALL_HINT)
    if landmarks.min() < 0 or landmarks.max() >= v:
        raise BundleError(f"The bundle's 'landmarks_68' has indices outside [0, {v}).", REINSTALL_HINT)

    photo_entries = _field(manifest, "photos", list, "photos")
    photos = [_read_photo(root, entry, k, names) for k, entry in enumerate(photo_entries)]
    job = manifest.get("job") if isinstance(manifest.get("job"), dict) else {}
    name = job.get("name") if isinstance(job.get("name"), str) and job.get("name").strip() else root.name
    warnings = manifest.get("warnings") if isinstance(manifest.get("warnings"), list) else []
    hair = manifest.get("hair")
    hair_color = None
    if hair is not None:
        values = _number_list(_field(hair, "color", list, "hair.color"), 3, "hair.color")
        if not all(0.0 <= v <= 1.0 for v in values):
            raise BundleError(f"The bundle's hair.color {values} is not a linear RGB colour in [0, 1].", REINSTALL_HINT)
        hair_color = tuple(values)
    return Bundle(
        root=root, manifest=manifest, name=name.strip(),
        vertices=vertices, faces=faces, faces_uv=faces_uv, uv=uv, face_material=face_material,
        expression_deltas=deltas, landmarks_68=landmarks, expression_names=list(names),
        identity=_number_list(manifest.get("identity", []), None, "identity"),
        materials=materials, photos=photos, warnings=[str(w) for w in warnings], hair_color=hair_color,
    )
