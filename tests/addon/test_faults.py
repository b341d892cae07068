"""Backend faults seen from Blender, with the REAL backend process: killed mid-job, restarted, two jobs at once,
junk on its stdout. Hangs, timeouts, crashes at start-up and protocol mismatches are in test_reconstruct.py and
test_backend_client.py; Blender quitting (also with a job running) in test_lifecycle.py.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import bpy
import pytest

from .conftest import DEV_PHOTO, drive_timer

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="signals the backend process")


def wait_for_stage(jobs, request, prefix: str, timeout: float = 120.0) -> None:
    """Poll the backend until the job's progress message starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    while not request.message.startswith(prefix):
        assert time.monotonic() < deadline and request.id in jobs.SESSION.requests, request.message
        jobs.poll_backend()
        time.sleep(0.05)


def meshes() -> list:
    return [o for o in bpy.data.objects if o.type == "MESH"]


def test_backend_killed_mid_job_is_reported_and_the_next_job_restarts_it(addon, scene, backend_python, model_path,
                                                                          fault, tmp_path):
    fault("fit:slow")  # 3 s in the fit: time to kill the process from outside, as the OOM killer would
    request = addon.jobs.start_reconstruct(scene, [str(DEV_PHOTO)], tmp_path / "out", 256, str(model_path))
    killed = addon.session.SESSION.client
    wait_for_stage(addon.jobs, request, "Fitting")
    os.kill(killed._process.pid, signal.SIGKILL)
    drive_timer(addon.jobs, scene, timeout=60)
    error = request.context["error"]
    assert error.kind == "BackendStopped" and "stopped unexpectedly (exit code -9)" in error.message
    assert "backend.log" in error.message and "Start the job again" in error.hint
    assert scene.likeness.status_is_error and not meshes()
    assert not Path(request.context["output"]).exists()

    head, camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / "out", texture_size=256,
                                         model=model_path, timeout=120)
    assert addon.session.SESSION.client is not killed and addon.session.SESSION.client.alive
    assert meshes() == [head] and camera.type == "CAMERA"


def test_a_second_reconstruct_while_one_runs_is_refused(addon, scene, backend_python, model_path, fault, tmp_path):
    fault("fit:slow")
    first = addon.jobs.start_reconstruct(scene, [str(DEV_PHOTO)], tmp_path / "out", 256, str(model_path))
    with pytest.raises(addon.errors.LikenessError, match="already running") as info:
        addon.jobs.start_reconstruct(scene, [str(DEV_PHOTO)], tmp_path / "out", 256, str(model_path))
    assert "Cancel" in info.value.hint
    scene.likeness.photos.add().filepath = str(DEV_PHOTO)
    with pytest.raises(RuntimeError, match="already running"):
        bpy.ops.likeness.reconstruct(texture_size=256, model=str(model_path))
    drive_timer(addon.jobs, scene)
    assert "error" not in first.context, first.context.get("error")
    assert len(meshes()) == 1 and scene.likeness.status.startswith("Imported")


def test_junk_on_the_protocol_stream_mid_job_is_logged_and_skipped(addon, scene, backend_python, model_path, fault,
                                                                   tmp_path):
    fault("fit:garbage")  # the real backend writes a non-JSON line on its protocol stream during the job
    head, _camera = addon.api.reconstruct([DEV_PHOTO], output_dir=tmp_path / "out", texture_size=256, model=model_path,
                                    timeout=120)
    assert head.type == "MESH"
    log = addon.session.SESSION.client.log_path.read_text()
    assert "ignored a line that is not JSON on the protocol stream: b'this is not json" in log


def test_backend_that_hangs_before_its_ready_line_times_out_and_is_killed(addon, backend_python, fault):
    fault("start:hang")
    client = addon.paths.ensure_backend()
    with pytest.raises(addon.errors.BackendError, match=r"did not start within 3 s; see the log at") as info:
        client.wait_ready(3)
    assert info.value.kind == "Timeout" and "Set up backend" in info.value.hint
    assert client._process.wait(5) == -signal.SIGKILL
