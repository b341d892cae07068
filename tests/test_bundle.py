import errno
import os

import numpy as np
import pytest

from likeness.service import bundle as bundle_mod
from likeness.service.bundle import BundleWriter, read_bundle
from likeness.errors import BadInput, CannotWrite, OutputExists


def write(ict, out):
    with BundleWriter(out) as writer:
        texture = writer.add_image("textures/skin_face.png", np.zeros((4, 4, 3), np.uint8))
        photo = {"path": writer.add_image("photos/photo_00.jpg", np.zeros((8, 8, 3), np.uint8)), "image_size": [8, 8]}
        return writer.finish(model=ict, job_name="job", vertices=ict.neutral, identity=np.zeros(3), photos=[photo],
                             texture_files={0: {"base_color": texture}}, warnings=[])


def test_round_trip_keeps_arrays_and_counts(ict, tmp_path):
    path = write(ict, tmp_path / "b")
    manifest, arrays = read_bundle(path)
    assert manifest["mesh"]["vertex_count"] == len(arrays["vertices"]) == ict.vertex_count
    np.testing.assert_array_equal(arrays["faces"], ict.faces)
    np.testing.assert_allclose(arrays["expression_deltas"], ict.expression_basis)
    assert manifest["photos"][0]["path"] == "photos/photo_00.jpg"
    assert manifest["materials"][0]["textures"]["base_color"] == "textures/skin_face.png"
    assert all(not rel.startswith(("/", "..")) for m in manifest["materials"] for rel in m["textures"].values())


@pytest.mark.parametrize("broken", ["_write_mesh", "_save_image"])
def test_a_failed_write_leaves_nothing_behind(ict, tmp_path, monkeypatch, broken):
    """A full disk in the mesh write or an image-encoding thread: CannotWrite, and no bundle or temporary folder."""
    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(bundle_mod, broken, boom)
    with pytest.raises(CannotWrite, match=r"\(No space left on device\); nothing was written") as info:
        write(ict, tmp_path / "b")
    assert "Free some disk space" in info.value.hint
    assert list(tmp_path.iterdir()) == []


def test_leaving_the_writer_without_finishing_removes_everything(ict, tmp_path):
    with BundleWriter(tmp_path / "b") as writer:
        writer.add_image("textures/skin_face.png", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_existing_output_and_wrong_version_are_refused(ict, tmp_path):
    path = write(ict, tmp_path / "b")
    with pytest.raises(OutputExists):
        write(ict, path)
    manifest = (path / "manifest.json").read_text().replace('"version": 1', '"version": 99')
    (path / "manifest.json").write_text(manifest)
    with pytest.raises(BadInput):
        read_bundle(path)


def test_a_killed_writers_leftovers_are_removed_by_the_next_write(ict, tmp_path):
    """A SIGKILLed backend leaves `.b.tmp-<pid>`; the next write to `b` removes it, a live writer's folder stays."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".b.tmp-{int(dead.stdout)}"
    (stale / "textures").mkdir(parents=True)
    live = tmp_path / ".b.tmp-1"  # pid 1 is always alive
    live.mkdir()
    write(ict, tmp_path / "b")
    assert not stale.exists() and live.is_dir() and (tmp_path / "b" / "manifest.json").is_file()
