"""Likeness: turn reference photos of a person into a 3D head with expression shape keys.

Blender side of the project. Pure modules (no bpy): ``bundle_io`` (read/validate bundles), ``convert``
(axes, cameras), ``sh_light`` (a photo's SH light as an environment), ``backend_client`` / ``session`` /
``setup_backend`` (the backend process). Blender modules: ``build`` (create objects; the render-resolution frame
handler), ``world`` (Match Photo Lighting), ``jobs`` (timer-driven requests), ``operators``, ``ui``,
``preferences``, ``api``. Animation: ``arkit`` (the backend's ARKit table, loaded from its source),
``animation`` (tracks and Live Link Face CSVs onto shape keys), ``rig``, ``shape_names``, ``anim_ops``.
Text edits: ``edit_ops`` (Edit with Text panel, the backend's ``edit``/``create`` jobs). Batches:
``batch_import`` (a folder of bundles in a grid, a contact sheet).
"""

from __future__ import annotations

import bpy

from . import anim_ops, batch_import, build, edit_ops, jobs, operators, preferences, properties, ui, world
from .session import SESSION

_MODULES = (properties, operators, world, preferences, ui, anim_ops, edit_ops, build, batch_import)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    if bpy.app.timers.is_registered(jobs.poll_backend):
        bpy.app.timers.unregister(jobs.poll_backend)
    SESSION.stop()
    for module in reversed(_MODULES):
        module.unregister()
