"""Python API for scripts, including Blender's background mode (``blender -b -P script.py``).

Example::

    from bl_ext.user_default.likeness import api
    head, *cameras = api.reconstruct(["/photos/me.jpg"], output_dir="/tmp/heads", texture_size=1024)

Both functions return ``[head, camera for photo 1, ...]`` and raise :class:`~.errors.LikenessError`
subclasses (``BackendError``, ``BundleError``) with ``.message`` and ``.hint`` on failure.
"""

from __future__ import annotations

import time
from pathlib import Path

import bpy

from . import build, jobs, paths
from .errors import BackendError
from .session import SESSION

#: Seconds between two polls of the backend while :func:`reconstruct` waits.
WAIT_INTERVAL = 0.05


def import_bundle(path: str | Path, scene: bpy.types.Scene | None = None) -> list[bpy.types.Object]:
    """Import the bundle folder ``path`` into ``scene`` (default: the current scene)."""
    scene = scene or bpy.context.scene
    view_layer = bpy.context.view_layer if scene == bpy.context.scene else scene.view_layers[0]
    return build.import_bundle(path, scene, view_layer)


def reconstruct(photos: list[str | Path], output_dir: str | Path | None = None, texture_size: int = 2048,
                timeout: float = 900.0, model: str | Path | None = None,
                scene: bpy.types.Scene | None = None) -> list[bpy.types.Object]:
    """Reconstruct a head from ``photos`` on the warm backend and import it; blocks until done.

    ``output_dir`` receives the bundle folder (default: the add-on's user folder). ``texture_size`` is in
    pixels. ``model`` is a head-model .npz instead of the installed one. Raises ``BackendError`` of kind
    ``Timeout`` if it takes longer than ``timeout`` seconds: the job is cancelled, and if it does not end within
    ``jobs.CANCEL_GRACE`` seconds more the backend is killed (the next job starts a fresh one).
    """
    scene = scene or bpy.context.scene
    folder = Path(output_dir) if output_dir is not None else paths.output_folder("")
    request = jobs.start_reconstruct(scene, [str(p) for p in photos], folder, texture_size,
                                     str(model) if model else "")
    deadline, timed_out = time.monotonic() + timeout, False
    while request.id in SESSION.requests:
        if not timed_out and time.monotonic() > deadline:
            timed_out = jobs.cancel_reconstruct()  # ended by poll_backend: Cancelled, or killed after the grace
        jobs.poll_backend()
        time.sleep(WAIT_INTERVAL)
    error = request.context.get("error")
    if timed_out and getattr(error, "kind", "") == "Cancelled":
        raise BackendError(f"The reconstruction took longer than {timeout:.0f} s and was cancelled.",
                           "Use a larger timeout, smaller photos or a smaller texture size.", kind="Timeout")
    if error is not None:
        raise error
    return request.context["objects"]
