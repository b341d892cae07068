"""Headless bpy with the Likeness add-on installed from the built zip, in throw-away Blender user folders.

Import this module before anything imports ``bpy``: it points BLENDER_USER_RESOURCES and XDG_CACHE_HOME at a
temporary folder first, so scripts and benchmarks never touch the user's own Blender set-up.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SANDBOX = Path(tempfile.mkdtemp(prefix="likeness-blender-"))
atexit.register(shutil.rmtree, SANDBOX, ignore_errors=True)  # the user folders go when the script ends
os.environ["BLENDER_USER_RESOURCES"] = str(SANDBOX / "blender")
os.environ["XDG_CACHE_HOME"] = str(SANDBOX / "cache")
os.environ.setdefault("LIKENESS_BACKEND_PYTHON", sys.executable)

import bpy  # noqa: E402


def install_addon():
    """Build the add-on zip, install and enable it like a user would; returns its ``api`` module."""
    sys.path.insert(0, str(REPO))
    import build_addon

    zip_path = build_addon.build(SANDBOX / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    from bl_ext.user_default.likeness import api

    return api
