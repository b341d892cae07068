"""The bundle reader refuses anything that does not match docs/bundle.md before Blender data is created."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

from .bundle_factory import EXPRESSIONS, write_bundle


@pytest.fixture
def bundle_io(addon):
    return addon.bundle_io


def test_valid_bundle_is_read_with_arrays_and_paths(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b", photos=2,
                        edit_manifest=lambda m: m["photos"][1].update(expression={"eyeBlink_L": 0.9, "jawOpen": 0.1}))
    bundle = bundle_io.read_bundle(root / "manifest.json")  # the manifest file is accepted as well as the folder
    assert bundle.root == root.resolve()
    assert bundle.name == "boxhead"
    assert bundle.vertices.shape == (8, 3) and bundle.faces.shape == (7, 4)
    assert bundle.expression_names == EXPRESSIONS
    # weights come out in the order of the expression list, whatever the order in the photo's dict
    np.testing.assert_allclose(bundle.photos[1].expression, [0.1, 0.9])
    assert bundle.photos[0].path == (root / "photos" / "photo_00.jpg").resolve()
    assert bundle.materials[0].textures["base_color"] == (root / "textures" / "skin_face.png").resolve()
    assert bundle.materials[1].textures == {} and bundle.materials[1].base_color[3] == 0.0


def _set_texture(path):
    return lambda m: m["materials"][0]["textures"].update(base_color=path)


def test_refuses_parent_directory_path(bundle_io, tmp_path):
    (tmp_path / "outside.png").write_bytes(b"x")
    root = write_bundle(tmp_path / "b", edit_manifest=_set_texture("../outside.png"))
    with pytest.raises(bundle_io.BundleError, match=r"leaves the bundle folder") as info:
        bundle_io.read_bundle(root)
    assert info.value.hint


@pytest.mark.parametrize("absolute", ["/etc/hostname", "C:\\Windows\\win.ini", "\\\\server\\share\\a.png"])
def test_refuses_absolute_path(bundle_io, tmp_path, absolute):
    root = write_bundle(tmp_path / "b", edit_manifest=_set_texture(absolute))
    with pytest.raises(bundle_io.BundleError, match="absolute"):
        bundle_io.read_bundle(root)


def test_refuses_symlink_escaping_the_bundle(bundle_io, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    root = write_bundle(tmp_path / "b")
    texture = root / "textures" / "skin_face.png"
    texture.unlink()
    os.symlink(secret, texture)
    with pytest.raises(bundle_io.BundleError, match="outside the bundle folder"):
        bundle_io.read_bundle(root)


def test_accepts_symlink_inside_the_bundle(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b")
    os.symlink(root / "textures" / "skin_face.png", root / "textures" / "alias.png")
    json_path = root / "manifest.json"
    manifest = json.loads(json_path.read_text())
    manifest["materials"][0]["textures"]["base_color"] = "textures/alias.png"
    json_path.write_text(json.dumps(manifest))
    assert bundle_io.read_bundle(root).materials[0].textures["base_color"].name == "skin_face.png"


def test_refuses_unknown_version_naming_both(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b", edit_manifest=lambda m: m.update(version=2))
    with pytest.raises(bundle_io.BundleError, match=r"version 2.*version 1"):
        bundle_io.read_bundle(root)


def test_refuses_other_format(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b", edit_manifest=lambda m: m.update(format="something.else"))
    with pytest.raises(bundle_io.BundleError, match="not a Likeness bundle"):
        bundle_io.read_bundle(root)


def test_refuses_missing_folder_and_bad_json(bundle_io, tmp_path):
    with pytest.raises(bundle_io.BundleError, match="not a folder"):
        bundle_io.read_bundle(tmp_path / "nowhere")
    root = write_bundle(tmp_path / "b")
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(bundle_io.BundleError, match="not valid JSON"):
        bundle_io.read_bundle(root)


def test_refuses_missing_photo(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b")
    (root / "photos" / "photo_00.jpg").unlink()
    with pytest.raises(bundle_io.BundleError, match="missing"):
        bundle_io.read_bundle(root)


def _edit(key, value):
    return lambda arrays: arrays.__setitem__(key, value(arrays[key]))


@pytest.mark.parametrize("edit_arrays, message", [
    (_edit("vertices", lambda a: a[:, :2]), r"'vertices' array is float32\[8, 2\], expected float32\[8, 3\]"),
    (_edit("vertices", lambda a: a.astype(np.float64)), r"'vertices' array is float64"),
    (_edit("expression_deltas", lambda a: a[:1]), r"'expression_deltas' array is float32\[1, 8, 3\]"),
    (_edit("faces", lambda a: np.where(a == 7, 8, a).astype(np.int32)), r"'faces' array has indices outside"),
    (_edit("faces", lambda a: np.where(a == 0, -1, a).astype(np.int32)), r"'faces' array has indices outside"),
    (_edit("faces_uv", lambda a: np.where(a == 25, 99, a).astype(np.int32)), r"'faces_uv' array has indices"),
    (_edit("face_material", lambda a: np.full_like(a, 2)), r"'face_material' has indices outside \[0, 2\)"),
    (_edit("landmarks_68", lambda a: np.full_like(a, 8)), r"'landmarks_68' has indices outside"),
    (_edit("vertices", lambda a: np.where(a > 0, np.nan, a).astype(np.float32)), "NaN"),
    (lambda arrays: arrays.pop("uv"), "no 'uv' array"),
])
def test_refuses_wrong_arrays(bundle_io, tmp_path, edit_arrays, message):
    root = write_bundle(tmp_path / "b", edit_arrays=edit_arrays)
    with pytest.raises(bundle_io.BundleError, match=message):
        bundle_io.read_bundle(root)


def test_refuses_triangle_mismatch_between_faces_and_uvs(bundle_io, tmp_path):
    def make_quad_uv(arrays):
        arrays["faces_uv"][5, 3] = 0
    root = write_bundle(tmp_path / "b", edit_arrays=make_quad_uv)
    with pytest.raises(bundle_io.BundleError, match="disagree on which polygons are triangles"):
        bundle_io.read_bundle(root)


@pytest.mark.parametrize("edit_manifest, message", [
    (lambda m: m["mesh"].update(vertex_count=9), r"'vertices' array is float32\[8, 3\], expected float32\[9, 3\]"),
    (lambda m: m.update(expressions=["jawOpen", "jawOpen"]), "not unique"),
    (lambda m: m["photos"][0]["pose"].update(model_to_camera=[[1, 0, 0]]), "not a 4x4 matrix"),
    (lambda m: m["photos"][0]["camera"].update(focal_px=-3), "focal_px"),
    (lambda m: m["photos"][0].update(expression={"smile": 1.0}), "unknown expressions"),
    (lambda m: m["materials"][0].update(base_color=[1, 0]), r"materials\[0\].base_color"),
])
def test_refuses_inconsistent_manifest(bundle_io, tmp_path, edit_manifest, message):
    root = write_bundle(tmp_path / "b", edit_manifest=edit_manifest)
    with pytest.raises(bundle_io.BundleError, match=message):
        bundle_io.read_bundle(root)


def test_refuses_pickled_arrays(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b", edit_arrays=lambda a: a.update(landmarks_68=np.array([{"evil": 1}],
                                                                                               dtype=object)))
    with pytest.raises(bundle_io.BundleError, match="'landmarks_68' array holds pickled Python objects"):
        bundle_io.read_bundle(root)


HUGE = (1 << 26, 3)  # 768 MiB of float32 claimed by a header of a few dozen bytes


def rewrite_npz(root, key: str, shape: tuple[int, ...], dtype: str = "<f4") -> None:
    """Replace (or add) member ``key`` of head.npz by a bare .npy header claiming ``shape``, with no data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(root / "head.npz") as old:
        members = {name: old.read(name) for name in old.namelist()}
    members[f"{key}.npy"] = header.getvalue()
    with zipfile.ZipFile(root / "head.npz", "w", zipfile.ZIP_DEFLATED) as new:
        for name, data in members.items():
            new.writestr(name, data)


def peak_memory_while(read) -> int:
    """Peak bytes traced (NumPy's array buffers included) while ``read()`` runs."""
    tracemalloc.start()
    try:
        read()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_huge_array_header_is_refused_before_allocating(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b")
    rewrite_npz(root, "vertices", HUGE)
    errors = []

    def read():
        try:
            bundle_io.read_bundle(root)
        except bundle_io.BundleError as exc:
            errors.append(exc)
    assert peak_memory_while(read) < 16 << 20
    assert errors and f"'vertices' array is float32{list(HUGE)}, expected float32[8, 3]" in errors[0].message


def test_unknown_npz_members_are_never_loaded(bundle_io, tmp_path):
    root = write_bundle(tmp_path / "b")
    rewrite_npz(root, "something_else", HUGE)
    bundles = []
    assert peak_memory_while(lambda: bundles.append(bundle_io.read_bundle(root))) < 16 << 20
    assert bundles[0].vertices.shape == (8, 3)
