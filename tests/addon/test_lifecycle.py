"""No backend process outlives Blender: quitting Blender (atexit) stops the warm backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ADDON_MODULE

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="checks processes through /proc")

SCRIPT = textwrap.dedent("""
    import importlib, sys, time
    import bpy
    bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
    paths = importlib.import_module("{module}.paths")
    session = importlib.import_module("{module}.session")
    paths.ensure_backend().wait_ready(120)
    print("BACKEND_PID", session.SESSION.client.pid, flush=True)
    # leave without disabling the add-on, as when the user quits Blender
""").format(module=ADDON_MODULE)


def process_is_gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "Z" in state.split()[1]  # a zombie has exited; only its parent's bookkeeping is left


def test_quitting_blender_stops_the_backend(addon_zip, backend_python, tmp_path):
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(addon_zip)], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    pid = int(next(line for line in done.stdout.splitlines() if line.startswith("BACKEND_PID")).split()[1])
    assert process_is_gone(pid), f"backend {pid} outlived Blender"


def test_disabling_the_addon_stops_the_backend(addon, backend_python):
    client = addon.paths.ensure_backend()
    client.wait_ready(120)
    addon.unregister()
    try:
        assert client._process.returncode == 0, "the backend did not exit cleanly on shutdown"
        assert addon.session.SESSION.client is None
    finally:
        addon.register()
