"""Where the add-on keeps its files, and how it finds and starts the backend."""

from __future__ import annotations

from pathlib import Path

import bpy

from .backend_client import BackendClient
from .session import SESSION, resolve_python

ADDON_PACKAGE = __package__
ADDON_DIR = Path(__file__).resolve().parent


def user_dir() -> Path:
    """The add-on's writable folder (survives add-on upgrades): backend venv, logs, unsaved-file bundles."""
    if ADDON_PACKAGE.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, create=True))
    path = Path(bpy.utils.user_resource("SCRIPTS", path="likeness_data", create=True))
    return path


def default_venv() -> Path:
    """The virtual environment made by 'Set up backend'."""
    return user_dir() / "backend-venv"


def backend_log_path() -> Path:
    return user_dir() / "logs" / "backend.log"


def setup_log_path() -> Path:
    return user_dir() / "logs" / "setup.log"


def output_folder(setting: str) -> Path:
    """The bundles folder: the panel setting ('//' = next to the .blend), or the add-on's folder if unsaved."""
    setting = setting or "//likeness/"
    if setting.startswith("//") and not bpy.data.filepath:
        return user_dir() / "bundles"
    return Path(bpy.path.abspath(setting))


def preferences() -> bpy.types.AddonPreferences | None:
    addon = bpy.context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def backend_python() -> Path:
    """Backend interpreter: $LIKENESS_BACKEND_PYTHON, the preference, or the set-up venv (BackendError if none)."""
    prefs = preferences()
    return resolve_python(prefs.backend_python if prefs is not None else "", default_venv())


def ensure_backend() -> BackendClient:
    """The warm backend client, started now if needed (returns without waiting for it to be ready)."""
    return SESSION.ensure_client(backend_python(), backend_log_path())
