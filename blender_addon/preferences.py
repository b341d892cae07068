"""Add-on preferences: which Python runs the backend, Check, Set up backend, Open log."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import jobs, paths, shape_names
from .errors import LikenessError
from .session import SESSION
from .setup_backend import BackendSetup, backend_source_dir

#: Seconds between two status updates while "Set up backend" runs.
SETUP_POLL_INTERVAL = 0.5


class SetupState:
    """The running or last 'Set up backend' (one at a time)."""

    setup: BackendSetup | None = None


def poll_setup() -> float | None:
    """Timer callback: mirror the set-up's progress in the status bar; None when it has ended."""
    setup = SetupState.setup
    if setup is None:
        return None
    if not setup.done:
        jobs.set_status_bar(f"Likeness: {setup.stage}... ({setup.fraction:.0%})")
        return SETUP_POLL_INTERVAL
    jobs.set_status_bar(None)
    SESSION.stop()  # the next job starts the freshly installed backend
    if setup.error is not None:
        jobs.CheckStatus.text, jobs.CheckStatus.is_error = str(setup.error), True
    else:
        jobs.CheckStatus.text, jobs.CheckStatus.is_error = "Backend is set up. Press Check to test it.", False
    return None


class LIKENESS_OT_check_backend(bpy.types.Operator):
    """Start the backend and show its version, Python and head-model status"""

    bl_idname = "likeness.check_backend"
    bl_label = "Check"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            jobs.start_check()
        except LikenessError as exc:
            jobs.CheckStatus.text, jobs.CheckStatus.is_error = str(exc), True
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class LIKENESS_OT_setup_backend(bpy.types.Operator):
    """Create a private Python environment with Blender's Python and install the backend and head model into it
(downloads its dependencies from PyPI)"""

    bl_idname = "likeness.setup_backend"
    bl_label = "Set up Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return SetupState.setup is None or SetupState.setup.done

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            source = backend_source_dir(paths.ADDON_DIR)
        except LikenessError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        previous = SESSION.client
        SESSION.stop()  # the venv may be replaced under a running backend; the set-up waits for it to exit
        SetupState.setup = BackendSetup(paths.default_venv(), source, paths.setup_log_path(), sys.executable,
                                        previous=previous)
        SetupState.setup.start()
        jobs.CheckStatus.text, jobs.CheckStatus.is_error = "Setting up the backend (see the status bar)...", False
        bpy.app.timers.register(poll_setup, first_interval=SETUP_POLL_INTERVAL, persistent=True)
        return {"FINISHED"}


class LIKENESS_OT_open_log(bpy.types.Operator):
    """Open the backend's log file (or the set-up log) in the system's text viewer"""

    bl_idname = "likeness.open_log"
    bl_label = "Open Log"

    which: bpy.props.EnumProperty(items=[("BACKEND", "Backend", ""), ("SETUP", "Set-up", "")], default="BACKEND")

    def execute(self, context: bpy.types.Context) -> set[str]:
        log: Path = paths.backend_log_path() if self.which == "BACKEND" else paths.setup_log_path()
        if not log.is_file():
            self.report({"WARNING"}, f"There is no log yet at {log}")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=str(log))
        return {"FINISHED"}


class LikenessPreferences(bpy.types.AddonPreferences):
    bl_idname = paths.ADDON_PACKAGE

    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python interpreter with the 'likeness' backend installed. "
                    "Empty: the environment made by 'Set up backend'",
    )
    shape_key_names: EnumProperty(
        name="Shape Key Names", items=shape_names.STYLE_ITEMS, default="ict",
        description="Names of the expression shape keys of imported heads (ARKit spellings add whole "
                    "browInnerUp and cheekPuff keys; there is no tongueOut)",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_python")
        layout.prop(self, "shape_key_names")
        if not self.backend_python:
            layout.label(text=f"Using {paths.default_venv()}", icon="INFO")
        row = layout.row()
        row.operator(LIKENESS_OT_check_backend.bl_idname, icon="CHECKMARK")
        row.operator(LIKENESS_OT_setup_backend.bl_idname, icon="IMPORT")
        row.operator(LIKENESS_OT_open_log.bl_idname, icon="TEXT").which = "BACKEND"
        row.operator(LIKENESS_OT_open_log.bl_idname, text="Open Set-up Log", icon="TEXT").which = "SETUP"
        setup = SetupState.setup
        if setup is not None and not setup.done:
            layout.label(text=f"{setup.stage}... ({setup.fraction:.0%})", icon="TIME")
        if jobs.CheckStatus.text:
            box = layout.box()
            box.alert = jobs.CheckStatus.is_error
            box.label(text=jobs.CheckStatus.text, icon="ERROR" if jobs.CheckStatus.is_error else "INFO")


CLASSES = (LIKENESS_OT_check_backend, LIKENESS_OT_setup_backend, LIKENESS_OT_open_log, LikenessPreferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    if SetupState.setup is not None and not SetupState.setup.done:
        SetupState.setup.cancel()
    if bpy.app.timers.is_registered(poll_setup):
        bpy.app.timers.unregister(poll_setup)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
