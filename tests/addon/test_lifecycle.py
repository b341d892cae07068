"""No backend process outlives Blender (atexit stops it), and stopping it never waits on the UI thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import ADDON_MODULE, DEV_PHOTO, find_ict_model

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc")

SCRIPT = textwrap.dedent("""
    import importlib, sys, time
    import bpy
    bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
    paths = importlib.import_module("{module}.paths")
    session = importlib.import_module("{module}.session")
    print("BACKEND_PID", paths.ensure_backend().wait_ready(120)["pid"], flush=True)
    if sys.argv[2] == "stop-first":
        session.SESSION.stop()  # returns at once; quitting right after must still not orphan the backend
    if sys.argv[2] == "job-running":  # quit while the backend is stuck in a job (LIKENESS_FAULT=texture:hang)
        params = {{"photos": [sys.argv[4]], "output": sys.argv[3], "model": sys.argv[5], "texture_size": 256}}
        request = session.SESSION.submit("reconstruct", params)
        while not request.message.startswith("Fitting"):  # the last progress before the texture stage hangs
            for event in session.SESSION.client.poll():
                assert event.get("type") == "progress", event
                request.message = event.get("message", "")
            time.sleep(0.05)
        print("JOB_RUNNING", request.message, flush=True)
    # leave without disabling the add-on, as when the user quits Blender
""").format(module=ADDON_MODULE)

FAKE = Path(__file__).with_name("fake_backend.py")


def process_is_gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "Z" in state.split()[1]  # a zombie has exited; only its parent's bookkeeping is left


def assert_gone(pid: int) -> None:
    """The backend has exited; if not, kill it (no orphan left by a failing test) and fail."""
    if not process_is_gone(pid):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"backend {pid} outlived Blender")


def quit_blender_with_backend(addon_zip, tmp_path, env: dict, mode: str = "", job: tuple[str, str] = ("", "")) -> int:
    """Run SCRIPT in a fresh Blender Python (which then quits); returns the backend's pid.

    ``job`` (photo, model) is the reconstruction the ``job-running`` mode starts before quitting.
    """
    env = {**env, "BLENDER_USER_RESOURCES": str(tmp_path / "blender"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(addon_zip), mode, str(tmp_path / "out"), *job],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert mode != "job-running" or "JOB_RUNNING Fitting" in done.stdout, done.stdout
    pid = int(next(line for line in done.stdout.splitlines() if line.startswith("BACKEND_PID")).split()[1])
    return pid


def test_quitting_blender_stops_the_backend(addon_zip, backend_python, tmp_path):
    pid = quit_blender_with_backend(addon_zip, tmp_path, dict(os.environ))
    assert_gone(pid)


def test_quitting_right_after_a_stop_kills_a_backend_that_does_not_exit(addon_zip, tmp_path):
    """SESSION.stop() leaves the waiting to a daemon thread, which dies at quit: atexit must still kill it."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "LIKENESS_BACKEND_PYTHON": str(python), "FAKE_BACKEND_MODE": "stubborn"}
    pid = quit_blender_with_backend(addon_zip, tmp_path, env, mode="stop-first")
    assert_gone(pid)


def test_quitting_blender_while_a_job_runs_stops_the_backend(addon_zip, backend_python, tmp_path):
    """The backend is stuck inside a job (it never reads the shutdown request): Blender's quit still ends it."""
    model = find_ict_model()
    if model is None or not DEV_PHOTO.is_file():
        pytest.skip("needs the ICT head model and a dev photo")
    pid = quit_blender_with_backend(addon_zip, tmp_path, {**os.environ, "LIKENESS_FAULT": "texture:hang"},
                                    mode="job-running", job=(str(DEV_PHOTO), str(model)))
    assert_gone(pid)
    assert not (tmp_path / "out").exists()


def test_disabling_the_addon_stops_the_backend_without_waiting(addon, backend_python):
    client = addon.paths.ensure_backend()
    client.wait_ready(120)
    started = time.monotonic()
    addon.unregister()
    try:
        assert time.monotonic() - started < 1.0, "disabling the add-on waited for the backend"
        assert addon.session.SESSION.client is None
        assert client.join(15) and client._process.returncode == 0, "the backend did not exit cleanly"
    finally:
        addon.register()
