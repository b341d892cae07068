"""Fixtures of the add-on tests: real bpy 5.0, the add-on installed from the zip build_addon.py makes.

Blender's user folders (BLENDER_USER_RESOURCES) and caches (XDG_CACHE_HOME) point at a temporary folder
*before* bpy is imported, so the tests never touch the user's Blender set-up.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SANDBOX = Path(tempfile.mkdtemp(prefix="likeness-addon-tests-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_SANDBOX / "blender")
os.environ["XDG_CACHE_HOME"] = str(_SANDBOX / "cache")

import bpy  # noqa: E402  (must come after the environment above)
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for shared_paths in any import mode
from shared_paths import DEV_IMAGES, REPO, find_ict_model  # noqa: E402

DEV_PHOTO = DEV_IMAGES / "dev_000_london_002_03.jpg"
ADDON_MODULE = "bl_ext.user_default.likeness"

sys.path.insert(0, str(REPO))
import build_addon  # noqa: E402


def pytest_sessionfinish(session, exitstatus) -> None:
    session_module = sys.modules.get(f"{ADDON_MODULE}.session")
    if session_module is not None:
        session_module.SESSION.stop_at_exit()
    shutil.rmtree(_SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    return build_addon.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def addon(addon_zip):
    """The add-on package, installed and enabled from the zip like a user would."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(addon_zip), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}
    module = importlib.import_module(ADDON_MODULE)
    importlib.import_module(f"{ADDON_MODULE}.api")  # what scripts import; not loaded by register()
    assert ADDON_MODULE in bpy.context.preferences.addons
    return module


@pytest.fixture
def scene(addon):
    """A fresh empty scene for each test (the add-on stays enabled)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


@pytest.fixture
def backend_python(addon, monkeypatch):
    """Point the add-on at this interpreter, which has the `likeness` backend installed."""
    monkeypatch.setenv("LIKENESS_BACKEND_PYTHON", sys.executable)
    return sys.executable


def run_cli_reconstruct(photos: list[Path], output: Path, texture_size: int = 256) -> Path:
    """A real bundle from the backend CLI (`python -m likeness reconstruct`)."""
    model = find_ict_model()
    if model is None:
        pytest.skip("no ICT head model: not at $LIKENESS_ICT_MODEL, in ../shared, or installed")
    missing = [p for p in photos if not p.is_file()]
    if missing:
        pytest.skip(f"dev photo {missing[0]} is not available")
    command = [sys.executable, "-m", "likeness", "reconstruct", *map(str, photos), "-o", str(output),
               "--texture-size", str(texture_size), "--model", str(model)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"likeness reconstruct failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return output


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory) -> Path:
    """A bundle reconstructed by the real backend from one dev photo (256 px textures)."""
    return run_cli_reconstruct([DEV_PHOTO], tmp_path_factory.mktemp("bundles") / "dev000")


@pytest.fixture
def model_path() -> Path:
    model = find_ict_model()
    if model is None:
        pytest.skip("no ICT head model: not at $LIKENESS_ICT_MODEL, in ../shared, or installed")
    if not DEV_PHOTO.is_file():
        pytest.skip(f"dev photo {DEV_PHOTO} is not available")
    return model


def drive_timer(jobs, scene, timeout: float = 300.0) -> list[float]:
    """Call the timer callback like Blender would until it unregisters itself; returns the progress seen."""
    progress, deadline = [], time.monotonic() + timeout
    interval = jobs.poll_backend()
    while interval is not None:
        assert time.monotonic() < deadline, "the backend did not finish in time"
        progress.append(scene.likeness.progress)
        time.sleep(interval)
        interval = jobs.poll_backend()
    return progress


@pytest.fixture
def fault(addon, monkeypatch):
    """Start a fresh backend with LIKENESS_FAULT=<stage>:<mode> (the backend's fault injection)."""
    def inject(spec: str) -> None:
        addon.session.SESSION.stop()
        monkeypatch.setenv("LIKENESS_FAULT", spec)

    yield inject
    addon.session.SESSION.stop()  # the next test gets a backend without the fault
