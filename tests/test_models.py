"""The model registry (`likeness models install/list`) and the ICT-FaceKit OBJ converter. No network."""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from likeness.model import ict_convert
from likeness.service import models
from likeness.errors import BadInput, ModelMissing
from likeness.model.headmodel import default_ict_path, load_ict

from models_synthetic import write_checkout

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ICT_NPZ = SHARED / "models" / "ict_facekit" / "ict_face_model.npz"
TASK = SHARED / "models" / "mediapipe_face_landmarker" / "face_landmarker.task"


def shared_file(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.name} not found under ../shared (beside the repository)")
    return path


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    """A private LIKENESS_DATA_DIR, no model override, and no network."""
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LIKENESS_ICT_MODEL", raising=False)

    def offline(*args, **kwargs):
        raise AssertionError("tests must not use the network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return tmp_path / "data"


@pytest.fixture(scope="session")
def shared_ict() -> dict[str, np.ndarray]:
    return load_npz(shared_file(ICT_NPZ))


@pytest.fixture(scope="session")
def checkout(shared_ict, tmp_path_factory) -> Path:
    """A synthetic upstream checkout written from the shared npz (all 100 identities, 57 shapes)."""
    return write_checkout(shared_ict, tmp_path_factory.mktemp("ict") / "ICT-FaceKit")


@pytest.fixture(scope="session")
def converted(checkout) -> dict[str, np.ndarray]:
    return ict_convert.convert_checkout(checkout)


def assert_same_arrays(got: dict, want: dict) -> None:
    """Same keys in the same order, dtypes, shapes and bits (floats compared bitwise, -0.0 included)."""
    assert list(got) == list(want)
    for key, expected in want.items():
        actual = got[key]
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), key
        if expected.dtype.kind == "f":
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6, err_msg=key)
            assert np.array_equal(actual.view(np.uint32), expected.view(np.uint32)), key
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=key)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# Registry ------------------------------------------------------------------------------------------------

def test_list_models_before_install(data_dir):
    listed = {m["name"]: m for m in models.list_models()}
    # flame, smirk (the user's own FLAME and SMIRK) and sd (Stable Diffusion for text edits): --from only
    assert tuple(listed) == (*models.MODEL_NAMES, "flame", "smirk", "sd")
    for m in listed.values():
        assert set(m) == {"name", "installed", "path", "license", "description", "non_commercial"}
        assert m["installed"] is False and m["non_commercial"] is (m["name"] in ("flame", "smirk"))
        assert Path(m["path"]).is_relative_to(data_dir)
    assert listed["ict"]["path"] == str(default_ict_path())
    assert "MIT" in listed["ict"]["license"] and "Apache-2.0" in listed["mediapipe-blendshapes"]["license"]


def test_unknown_model_is_bad_input():
    with pytest.raises(BadInput) as err:
        models.install("eg3d")
    assert "ict" in err.value.hint and "mediapipe-blendshapes" in err.value.hint


def test_missing_source_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        models.install("ict", str(tmp_path / "nope.npz"))


def test_missing_ict_model_names_the_install_command():
    with pytest.raises(ModelMissing) as err:
        load_ict()
    assert "likeness models install ict" in err.value.hint


# ICT from a packed npz -------------------------------------------------------------------------------------

def test_install_ict_from_npz(data_dir):
    source = shared_file(ICT_NPZ)
    messages: list[str] = []
    path = models.install("ict", str(source), log=messages.append)
    assert path == default_ict_path() and path.read_bytes() == source.read_bytes()
    assert (path.parent / "LICENSE").read_text() == (source.parent / "LICENSE").read_text()
    assert leftovers(path.parent) == ["LICENSE", "ict_face_model.npz"]
    assert {m["name"]: m["installed"] for m in models.list_models()} == {"ict": True, "mediapipe-blendshapes": False,
                                                                         "flame": False, "smirk": False, "sd": False}
    model = load_ict()
    assert model.vertex_count == 26719 and len(model.expression_names) == 53
    assert "USC Institute for Creative Technologies" in model.license_text
    assert any("Installed ict" in m for m in messages)


def test_install_ict_npz_without_license_writes_mit(tmp_path):
    source = tmp_path / "copy" / "ict_face_model.npz"
    source.parent.mkdir()
    shutil.copyfile(shared_file(ICT_NPZ), source)
    path = models.install("ict", str(source), log=lambda m: None)
    assert (path.parent / "LICENSE").read_text() == ict_convert.LICENSE_TEXT


def tampered(shared_ict: dict, tmp_path: Path, **changes) -> Path:
    arrays = {**shared_ict, **changes}
    path = tmp_path / "bad" / "ict_face_model.npz"
    path.parent.mkdir(exist_ok=True)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_tampered_npz_is_refused_and_nothing_written(shared_ict, tmp_path, data_dir):
    neutral = shared_ict["neutral"].copy()
    neutral[1234, 1] += 1e-3
    with pytest.raises(BadInput, match="'neutral' array differs") as err:
        models.install("ict", str(tampered(shared_ict, tmp_path, neutral=neutral)), log=lambda m: None)
    assert "likeness models install ict" in err.value.hint
    assert leftovers(data_dir) == []


@pytest.mark.parametrize("key, change, message", [
    ("faces", lambda a: None, "missing array 'faces'"),
    ("faces", lambda a: a.astype(np.float32), "'faces' has dtype float32"),
    ("expression_basis", lambda a: a[:-1], "'expression_basis' has shape"),
])
def test_npz_with_wrong_layout_is_refused(shared_ict, tmp_path, data_dir, key, change, message):
    path = tampered(shared_ict, tmp_path, **{key: change(shared_ict[key])})
    with pytest.raises(BadInput, match=message):
        models.install("ict", str(path), log=lambda m: None)
    assert leftovers(data_dir) == []


def test_pickled_npz_is_refused(tmp_path, data_dir):
    path = tmp_path / "evil.npz"
    np.savez(path, neutral=np.array([{"payload": 1}], dtype=object))
    with pytest.raises(BadInput, match="not a readable npz"):
        models.install("ict", str(path), log=lambda m: None)
    assert leftovers(data_dir) == []


def test_refused_reinstall_keeps_the_installed_model(shared_ict, tmp_path):
    path = models.install("ict", str(shared_file(ICT_NPZ)), log=lambda m: None)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    faces = shared_ict["faces"].copy()
    faces[0, 0] = 1
    with pytest.raises(BadInput, match="'faces' array differs"):
        models.install("ict", str(tampered(shared_ict, tmp_path, faces=faces)), log=lambda m: None)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert leftovers(path.parent) == ["LICENSE", "ict_face_model.npz"]


# ICT from archives and checkouts ---------------------------------------------------------------------------

def malicious_zip(path: Path, member: str, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ICT-FaceKit-x/FaceXModel/vertex_indices.json", "{}")
        info = zipfile.ZipInfo(member)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "owned")
    return path


@pytest.mark.parametrize("member, symlink", [
    ("../evil.txt", False),
    ("ICT-FaceKit-x/FaceXModel/../../../evil.txt", False),
    ("/tmp/evil.txt", False),
    ("ICT-FaceKit-x/FaceXModel/generic_neutral_mesh.obj", True),
])
def test_unsafe_archive_is_refused(tmp_path, data_dir, monkeypatch, member, symlink):
    archive = malicious_zip(tmp_path / "archive.zip", member, symlink)
    with pytest.raises(BadInput, match="symbolic link" if symlink else "outside its folder"):
        models.install("ict", str(archive), log=lambda m: None)
    # The same archive arriving through the download path is refused too.
    monkeypatch.setattr(models, "fetch", lambda url, dest, log, limit: shutil.copyfile(archive, dest))
    with pytest.raises(BadInput):
        models.install("ict", log=lambda m: None)
    assert leftovers(data_dir) == []


def test_download_unpacks_converts_and_installs(shared_ict, tmp_path, monkeypatch):
    archive = tmp_path / "github.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ICT-FaceKit-sha/FaceXModel/vertex_indices.json", "{}")
        zf.writestr("ICT-FaceKit-sha/LICENSE", "MIT License\nupstream copy\n")
        zf.writestr("ICT-FaceKit-sha/Scripts/sample_random.py", "print('not needed')\n")
    fetched, converted_roots = [], []

    def fake_fetch(url, dest, log, limit):
        fetched.append(url)
        shutil.copyfile(archive, dest)

    def fake_convert(root):
        converted_roots.append(sorted(str(p.relative_to(root)) for p in root.rglob("*")))
        return shared_ict

    monkeypatch.setattr(models, "fetch", fake_fetch)
    monkeypatch.setattr(ict_convert, "convert_checkout", fake_convert)
    path = models.install("ict", log=lambda m: None)
    assert fetched == [f"https://github.com/ICT-VGL/ICT-FaceKit/archive/{ict_convert.SOURCE_COMMIT}.zip"]
    assert converted_roots == [["FaceXModel", "FaceXModel/vertex_indices.json", "LICENSE"]]
    assert (path.parent / "LICENSE").read_text() == "MIT License\nupstream copy\n"
    assert_same_arrays(load_npz(path), shared_ict)


def test_converted_download_that_differs_is_refused(shared_ict, tmp_path, data_dir, monkeypatch):
    archive = tmp_path / "github.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ICT-FaceKit-sha/FaceXModel/vertex_indices.json", "{}")
    basis = shared_ict["expression_basis"].copy()
    basis[5, 100, 2] = 0.5
    monkeypatch.setattr(models, "fetch", lambda url, dest, log, limit: shutil.copyfile(archive, dest))
    monkeypatch.setattr(ict_convert, "convert_checkout", lambda root: {**shared_ict, "expression_basis": basis})
    with pytest.raises(BadInput, match="'expression_basis' array differs"):
        models.install("ict", log=lambda m: None)
    assert leftovers(data_dir) == []


def test_network_error_suggests_from_path(monkeypatch, data_dir):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    for name in models.MODEL_NAMES:
        with pytest.raises(ModelMissing, match="Could not download") as err:
            models.install(name, log=lambda m: None)
        assert "--from PATH" in err.value.hint
    assert leftovers(data_dir) == []


def test_converter_round_trip(converted, shared_ict):
    assert ict_convert.layout_problems(converted) == []
    assert_same_arrays(converted, shared_ict)


def test_install_from_checkout(checkout, converted, monkeypatch):
    seen = []

    def cached(root):
        seen.append(root)
        return converted

    monkeypatch.setattr(ict_convert, "convert_checkout", cached)
    path = models.install("ict", str(checkout), log=lambda m: None)
    assert seen == [checkout]
    assert (path.parent / "LICENSE").read_text() == (checkout / "LICENSE").read_text()
    assert load_ict().vertex_count == 26719


# MediaPipe ---------------------------------------------------------------------------------------------------

def test_install_mediapipe_from_file(data_dir):
    source = shared_file(TASK)
    path = models.install("mediapipe-blendshapes", str(source), log=lambda m: None)
    assert path == data_dir / "models" / "mediapipe" / "face_landmarker.task"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == models.MEDIAPIPE_SHA256
    assert (path.parent / "LICENSE").read_text() == (source.parent / "LICENSE").read_text()
    assert {m["name"]: m["installed"] for m in models.list_models()}["mediapipe-blendshapes"] is True


@pytest.mark.parametrize("corruption", ["flip", "truncate"])
def test_corrupted_task_is_refused(tmp_path, data_dir, corruption):
    data = bytearray(shared_file(TASK).read_bytes())
    if corruption == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[-1]
    bad = tmp_path / "face_landmarker.task"
    bad.write_bytes(bytes(data))
    with pytest.raises(BadInput, match="sha256" if corruption == "flip" else "3758596 bytes") as err:
        models.install("mediapipe-blendshapes", str(bad), log=lambda m: None)
    assert models.MEDIAPIPE_URL in err.value.hint
    assert leftovers(data_dir) == []


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_mediapipe_download_streams_and_verifies(monkeypatch):
    data = shared_file(TASK).read_bytes()
    urls = []

    def serve(request, timeout):
        urls.append(request.full_url)
        return FakeResponse(data)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    messages: list[str] = []
    path = models.install("mediapipe-blendshapes", log=messages.append)
    assert urls == [models.MEDIAPIPE_URL] and path.read_bytes() == data
    assert "Apache" in (path.parent / "LICENSE").read_text()
    assert any("MB of 3.8 MB" in m for m in messages)


def test_oversized_download_is_stopped(monkeypatch, data_dir):
    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: FakeResponse(b"x" * (4 << 20)))
    with pytest.raises(ModelMissing, match="larger than expected"):
        models.install("mediapipe-blendshapes", log=lambda m: None)
    assert leftovers(data_dir) == []


# OBJ reader ----------------------------------------------------------------------------------------------

SMALL_OBJ = """# comment
mtllib x.mtl
v 0 0 0
v 1.5 0 0
# interleaved comment
v 1 1 -0.0
v 0 1 0
vt 0 0
vt 1 0
vn 0 0 1
vt 1 1
vt 0 1
g a
usemtl A
s 1
f 1/1/1 2/2/1 3/3/1 4/4/1
f 1/1/1 3/3/1 4/4/1
usemtl B
f 4/4/1 3/3/1 2/2/1"""


def test_read_obj_mesh_small(tmp_path):
    path = tmp_path / "small.obj"
    path.write_text(SMALL_OBJ.replace("\n", "\r\n"))
    vertices, uv, faces, faces_uv, materials = ict_convert.read_obj_mesh(path)
    np.testing.assert_array_equal(vertices, [[0, 0, 0], [1.5, 0, 0], [1, 1, 0], [0, 1, 0]])
    assert np.signbit(vertices[2, 2])
    np.testing.assert_array_equal(uv, [[0, 0], [1, 0], [1, 1], [0, 1]])
    np.testing.assert_array_equal(faces, [[0, 1, 2, 3], [0, 2, 3, -1], [3, 2, 1, -1]])
    np.testing.assert_array_equal(faces_uv, faces)
    assert faces.dtype == np.int32 and uv.dtype == np.float32
    assert materials == [("A", (0, 2)), ("B", (2, 3))]


SMALL_HEAD = "v 0 0 0\nv 1.5 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl A\n"


@pytest.mark.parametrize("faces, message", [
    ("f 1/1/1 2/2/1 3/3/1\nf 1/1 2/2 3/3\n", "triangles or quads"),
    ("f 1/1 2/2 3/3 4/4 1/1\n", "triangles or quads"),
    ("f 1//1 2//1 3//1\n", "triangles or quads"),
    ("f 1 2 3\n", "triangles or quads"),
    ("f 1/1 2/2 9/3\n", "outside"),
    ("", "no faces"),
    ("v 1 2\nf 1/1 2/2 3/3\n", "malformed 'v'"),
    ("v 1 2 x\nf 1/1 2/2 3/3\n", "malformed 'v'"),
    ("f 1/1 2/2 3/3\nusemtl B\nf 1/1 2/2 3/3\nusemtl A\nf 1/1 2/2 3/3\n", "more than one block"),
])
def test_read_obj_mesh_rejects(tmp_path, faces, message):
    path = tmp_path / "bad.obj"
    path.write_text(SMALL_HEAD + faces)
    with pytest.raises(BadInput, match=message):
        ict_convert.read_obj_mesh(path)


def test_faces_before_usemtl_rejected(tmp_path):
    path = tmp_path / "bad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\nusemtl A\nf 1/1 3/1 2/1\n")
    with pytest.raises(BadInput, match="before the first 'usemtl'"):
        ict_convert.read_obj_mesh(path)


def test_convert_rejects_incomplete_checkouts(checkout, tmp_path):
    with pytest.raises(BadInput, match="not an ICT-FaceKit checkout"):
        ict_convert.convert_checkout(tmp_path)
    partial = tmp_path / "partial" / "FaceXModel"
    partial.mkdir(parents=True)
    shutil.copyfile(checkout / "FaceXModel" / "generic_neutral_mesh.obj", partial / "generic_neutral_mesh.obj")
    with pytest.raises(BadInput, match="vertex_indices.json"):
        ict_convert.convert_checkout(partial.parent)
    shutil.copyfile(checkout / "FaceXModel" / "vertex_indices.json", partial / "vertex_indices.json")
    with pytest.raises(BadInput, match="identityNNN.obj"):
        ict_convert.convert_checkout(partial)
    (partial / "identity000.obj").write_text("v 0 0 0\n")
    with pytest.raises(BadInput, match="has 1 vertices; the neutral mesh has 26719"):
        ict_convert.convert_checkout(partial)
