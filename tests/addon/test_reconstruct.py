"""The product path end to end: operators and API against the REAL backend process (`python -m likeness serve`).

In background mode ``bpy.app.timers`` never fire, so the tests call the timer callback ``jobs.poll_backend``
by hand until it returns None, as Blender would.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import bpy
import pytest
from PIL import Image

from .conftest import DEV_PHOTO, drive_timer

ICT_VERTEX_COUNT = 26719


def test_reconstruct_operator_runs_the_real_backend(addon, scene, backend_python, model_path, tmp_path):
    settings = scene.likeness
    settings.photos.add().filepath = str(DEV_PHOTO)
    settings.output_dir = str(tmp_path / "out")
    result = bpy.ops.likeness.reconstruct(texture_size=256, model=str(model_path))
    assert result == {"FINISHED"}  # returns at once; the job runs in the backend process
    client = addon.session.SESSION.client
    assert client is not None and client.alive and client.python == backend_python

    progress = drive_timer(addon.jobs, scene)
    assert not settings.status_is_error, settings.status
    assert any(0.0 < p < 1.0 for p in progress), progress
    assert settings.progress == 1.0 and settings.status.startswith("Imported")
    bundle = tmp_path / "out" / DEV_PHOTO.stem
    assert (bundle / "manifest.json").is_file()
    collection = scene.collection.children[DEV_PHOTO.stem]
    heads = [o for o in collection.objects if o.type == "MESH"]
    assert len(heads) == 1 and len(heads[0].data.vertices) == ICT_VERTEX_COUNT
    assert len(heads[0].data.shape_keys.key_blocks) == 54
    assert heads[0]["likeness_bundle"] == str(bundle.resolve())
    assert [o.type for o in collection.objects].count("CAMERA") == 1
    assert client.alive, "the backend stays warm for the next job"


def test_check_reports_backend_version(addon, backend_python):
    addon.jobs.start_check()
    interval = addon.jobs.poll_backend()
    deadline = time.monotonic() + 120
    while interval is not None and time.monotonic() < deadline:
        time.sleep(interval)
        interval = addon.jobs.poll_backend()
    status = addon.jobs.CheckStatus
    assert not status.is_error, status.text
    assert "Backend 0.1.0" in status.text and "protocol 1" in status.text


def test_photo_without_a_face_is_reported_and_nothing_imported(addon, scene, backend_python, model_path, tmp_path):
    blank = tmp_path / "wall.jpg"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank)
    with pytest.raises(addon.errors.BackendError) as info:
        addon.api.reconstruct([blank], output_dir=tmp_path / "out", texture_size=256, model=model_path, timeout=120)
    assert info.value.kind == "NoFaceFound" and info.value.hint
    assert scene.likeness.status_is_error and "face" in scene.likeness.status.lower()
    assert not [o for o in bpy.data.objects if o.type == "MESH"]


def test_api_reconstruct_and_cancel(addon, scene, backend_python, model_path, tmp_path):
    objects = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / "out", texture_size=256, model=model_path)
    head, camera = objects
    assert len(head.data.vertices) == ICT_VERTEX_COUNT and camera.type == "CAMERA"

    # a second job with the same name goes to a new folder; cancelling it ends it with a Cancelled error
    request = addon.jobs.start_reconstruct(scene, [str(DEV_PHOTO)], tmp_path / "out", 256, str(model_path))
    assert request.context["output"].endswith(f"{DEV_PHOTO.stem}_2")
    assert bpy.ops.likeness.cancel() == {"FINISHED"}
    drive_timer(addon.jobs, scene)
    assert request.context["error"].kind == "Cancelled"
    assert scene.likeness.status_is_error
    assert not Path(request.context["output"]).exists()


def test_api_reconstruct_with_refinement(addon, scene, backend_python, model_path, tmp_path):
    """``refine=True`` travels with the job to the backend, whose manifest then says the photo's edges were used."""
    import json

    head, _camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / "out", texture_size=256,
                                          model=model_path, refine=True)
    manifest = json.loads((Path(head["likeness_bundle"]) / "manifest.json").read_text())
    assert "photo_edges" in manifest["photos"][0]["fit"]["evidence"]


def test_api_reconstruct_with_a_named_lens(addon, scene, backend_python, model_path, tmp_path):
    """``lens_mm`` travels with the job: the photo (no EXIF) is fitted with that lens, and its camera in Blender
    has it."""
    import json

    head, camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / "out", texture_size=256,
                                         model=model_path, lens_mm=85.0)
    manifest = json.loads((Path(head["likeness_bundle"]) / "manifest.json").read_text())
    assert manifest["photos"][0]["camera"]["focal_source"] == "lens"
    assert camera.data.lens == pytest.approx(85.0, abs=0.01)


def test_api_reconstruct_removing_occlusion(addon, scene, backend_python, model_path, tmp_path):
    """``occlusion=True`` (the panel's **Remove Occlusion From Skin**) travels with the job: the manifest says the
    head's own occlusion was divided out of the albedo."""
    import json

    head, _camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / "out", texture_size=256,
                                          model=model_path, occlusion=True)
    manifest = json.loads((Path(head["likeness_bundle"]) / "manifest.json").read_text())
    assert manifest["photos"][0]["light"]["occlusion"] is True


def test_api_reconstruct_with_the_expression_encoder(addon, scene, backend_python, model_path, tmp_path):
    """The encoder is the default and ``encoder=False`` travels with the job to the backend: the manifests say
    whether the encoder read the photo."""
    import json

    pytest.importorskip("torch")
    evidence = []
    for name, kwargs in (("default", {}), ("plain", {"encoder": False})):
        head, _camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / name, texture_size=128,
                                              model=model_path, **kwargs)
        manifest = json.loads((Path(head["likeness_bundle"]) / "manifest.json").read_text())
        evidence.append(manifest["photos"][0]["fit"]["evidence"])
    assert "expression_encoder" in evidence[0] and "expression_encoder" not in evidence[1]
    assert scene.likeness.encoder is True  # the sidebar's Learned Expression starts ticked


def test_missing_backend_python_is_a_clear_operator_error(addon, scene, monkeypatch, tmp_path):
    monkeypatch.setenv("LIKENESS_BACKEND_PYTHON", str(tmp_path / "nowhere" / "python"))
    addon.session.SESSION.stop()
    scene.likeness.photos.add().filepath = str(DEV_PHOTO) if DEV_PHOTO.is_file() else __file__
    with pytest.raises(RuntimeError, match="does not exist.*Set up backend"):
        bpy.ops.likeness.reconstruct()


def test_backend_crash_mid_job_is_reported(addon, scene, backend_python, model_path, fault, tmp_path):
    fault("fit:crash")
    photos = [{"name": str(DEV_PHOTO)}]  # the scripting form: the panel's photo list stays empty
    result = bpy.ops.likeness.reconstruct(photos=photos, output_dir=str(tmp_path), texture_size=256,
                                          model=str(model_path))
    assert result == {"FINISHED"}
    assert addon.session.SESSION.active("reconstruct").context["output"] == str(tmp_path / DEV_PHOTO.stem)
    drive_timer(addon.jobs, scene, timeout=120)
    status = scene.likeness.status
    assert scene.likeness.status_is_error
    assert "stopped unexpectedly (exit code 3)" in status and "backend.log" in status
    assert not [o for o in bpy.data.objects if o.type == "MESH"]
    assert addon.session.SESSION.active("reconstruct") is None  # Reconstruct is available again


def test_garbage_instead_of_ready_is_a_protocol_mismatch(addon, scene, backend_python, model_path, fault,
                                                         tmp_path):
    fault("start:garbage")
    with pytest.raises(addon.errors.BackendError, match="Protocol mismatch.*this is not json") as info:
        addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path, texture_size=256, model=model_path, timeout=60)
    assert info.value.kind == "ProtocolMismatch" and "Set up backend" in info.value.hint
    assert not addon.session.SESSION.client.alive


def test_model_missing_points_to_set_up_backend_not_a_terminal(addon, scene, backend_python, tmp_path):
    photo = tmp_path / "face.jpg"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(photo)
    missing = tmp_path / "no_model.npz"
    result = bpy.ops.likeness.reconstruct(photos=[{"name": str(photo)}], output_dir=str(tmp_path / "out"),
                                          model=str(missing))
    assert result == {"FINISHED"}
    request = addon.session.SESSION.active("reconstruct")
    drive_timer(addon.jobs, scene, timeout=120)
    error = request.context["error"]
    assert error.kind == "ModelMissing"
    assert str(missing) in error.message and "does not exist" in error.message  # the backend's message
    assert "Set up backend" in error.hint and "likeness models" not in error.hint
    assert scene.likeness.status_is_error and "Set up backend" in scene.likeness.status


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_hung(jobs, request, pid: int, timeout: float = 120.0) -> None:
    """Poll until the job reported its last stage before the hang ('fit'), then until the backend uses no CPU."""
    deadline = time.monotonic() + timeout
    while not request.message.startswith("Fitting"):
        assert time.monotonic() < deadline and request.id in jobs.SESSION.requests, request.message
        jobs.poll_backend()
        time.sleep(0.05)
    last, still_since = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - still_since < 1.0:
        assert time.monotonic() < deadline, "the backend kept working instead of hanging"
        time.sleep(0.2)
        now = cpu_seconds(pid)
        if now != last:
            last, still_since = now, time.monotonic()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="watches the backend's CPU time in /proc")
def test_cancel_of_a_hung_job_kills_the_backend(addon, scene, backend_python, model_path, fault, tmp_path,
                                                monkeypatch):
    fault("texture:hang")  # the backend stops responding inside the job: it never sees the Cancel
    monkeypatch.setattr(addon.jobs, "CANCEL_GRACE", 0.5)
    request = addon.jobs.start_reconstruct(scene, [str(DEV_PHOTO)], tmp_path / "out", 256, str(model_path))
    client = addon.session.SESSION.client
    wait_until_hung(addon.jobs, request, client._process.pid)
    assert bpy.ops.likeness.cancel() == {"FINISHED"}
    assert addon.jobs.poll_backend() is not None and client.alive  # within the grace period: still waiting
    drive_timer(addon.jobs, scene, timeout=30)
    error = request.context["error"]
    assert error.kind == "Cancelled" and "did not stop the job within 0.5 s" in error.message
    assert scene.likeness.status_is_error and scene.likeness.status.startswith("Cancelled")
    assert client._process.wait(5) == -signal.SIGKILL
    assert addon.session.SESSION.client is None and not addon.session.SESSION.requests
    assert not bpy.ops.likeness.cancel.poll()  # Reconstruct is available again

    addon.jobs.start_check()  # the next request starts a fresh backend
    drive_timer(addon.jobs, scene, timeout=120)
    assert not addon.jobs.CheckStatus.is_error, addon.jobs.CheckStatus.text
    assert addon.session.SESSION.client is not client and addon.session.SESSION.client.alive


def test_api_timeout_on_a_hung_job_kills_the_backend(addon, scene, backend_python, fault, tmp_path, monkeypatch):
    fault("load:hang")  # hangs as soon as the job starts, before any progress
    monkeypatch.setattr(addon.jobs, "CANCEL_GRACE", 0.5)
    photo = tmp_path / "face.jpg"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(photo)
    client = addon.paths.ensure_backend()
    client.wait_ready(120)  # warm, so the job reaches its hang well within the timeout
    started = time.monotonic()
    with pytest.raises(addon.errors.BackendError, match="longer than 1 s and was cancelled") as info:
        addon.api.reconstruct([photo], output_dir=tmp_path / "out", texture_size=256, timeout=1.0)
    assert info.value.kind == "Timeout"
    assert time.monotonic() - started < 10
    assert client._process.wait(5) == -signal.SIGKILL
    assert addon.session.SESSION.active("reconstruct") is None
