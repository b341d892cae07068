"""Likeness: turn reference photos of a person into a 3D head with expression shape keys.

Blender side of the project. Pure modules (no bpy): ``bundle_io`` (read/validate bundles), ``convert``
(axes, cameras), ``backend_client`` / ``session`` / ``setup_backend`` (the backend process). Blender modules:
``build`` (create objects; the render-resolution frame handler), ``jobs`` (timer-driven requests), ``operators``, ``ui``, ``preferences``, ``api``.
"""

from __future__ import annotations

import bpy

from . import build, jobs, operators, preferences, properties, ui
from .session import SESSION

_MODULES = (properties, operators, preferences, ui, build)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    if bpy.app.timers.is_registered(jobs.poll_backend):
        bpy.app.timers.unregister(jobs.poll_backend)
    SESSION.stop()
    for module in reversed(_MODULES):
        module.unregister()
