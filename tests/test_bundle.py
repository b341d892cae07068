import numpy as np
import pytest

from likeness import bundle as bundle_mod
from likeness.bundle import BundlePhoto, read_bundle, write_bundle
from likeness.errors import BadInput, OutputExists


def minimal_photo() -> BundlePhoto:
    return BundlePhoto(record={"path": None, "image_size": [8, 8]}, rgb=np.zeros((8, 8, 3), np.uint8))


def write(ict, out, **kw):
    args = dict(model=ict, job_name="job", vertices=ict.neutral, identity=np.zeros(3),
                photos=[minimal_photo()], textures={0: np.zeros((4, 4, 3), np.uint8)}, preview=None, warnings=[])
    args.update(kw)
    return write_bundle(out, **args)


def test_round_trip_keeps_arrays_and_counts(ict, tmp_path):
    path = write(ict, tmp_path / "b")
    manifest, arrays = read_bundle(path)
    assert manifest["mesh"]["vertex_count"] == len(arrays["vertices"]) == ict.vertex_count
    np.testing.assert_array_equal(arrays["faces"], ict.faces)
    np.testing.assert_allclose(arrays["expression_deltas"], ict.expression_basis)
    assert manifest["photos"][0]["path"] == "photos/photo_00.jpg"
    assert manifest["materials"][0]["textures"]["base_color"] == "textures/skin_face.png"
    assert all(not rel.startswith(("/", "..")) for m in manifest["materials"] for rel in m["textures"].values())


def test_a_failed_write_leaves_nothing_behind(ict, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_mod, "_write_mesh", boom)
    with pytest.raises(OSError):
        write(ict, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_and_wrong_version_are_refused(ict, tmp_path):
    path = write(ict, tmp_path / "b")
    with pytest.raises(OutputExists):
        write(ict, path)
    manifest = (path / "manifest.json").read_text().replace('"version": 1', '"version": 99')
    (path / "manifest.json").write_text(manifest)
    with pytest.raises(BadInput):
        read_bundle(path)
