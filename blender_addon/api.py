"""Python API for scripts, including Blender's background mode (``blender -b -P script.py``).

Example::

    from bl_ext.user_default.likeness import api
    head, *cameras = api.reconstruct(["/photos/me.jpg"], output_dir="/tmp/heads", texture_size=1024)

``import_bundle`` and ``reconstruct`` return ``[head, camera for photo 1, ...]``; ``animate_video`` tracks a video
and animates a head (docs/animation.md); ``edit`` changes a head by a text prompt into a new head beside it and
``create_head`` makes one from a prompt alone (README: Text edits). All raise :class:`~.errors.LikenessError` subclasses (``BackendError``,
``BundleError``) with ``.message`` and ``.hint`` on failure.
"""

from __future__ import annotations

import time
from pathlib import Path

import bpy

from . import anim_ops, build, edit_ops, jobs, paths, world
from .errors import BackendError
from .session import SESSION, Request

#: Seconds between two polls of the backend while :func:`reconstruct` waits.
WAIT_INTERVAL = 0.05


def import_bundle(path: str | Path, scene: bpy.types.Scene | None = None, hair_cap: bool = True,
                  hair_volume: float = 0.0) -> list[bpy.types.Object]:
    """Import the bundle folder ``path`` into ``scene`` (default: the current scene); returns ``[head, cameras...]``.

    ``hair_cap``: the photos' hair painted over the skin where they saw it (switch: the material's 'Hair Cap'
    value); ``hair_volume``: metres to lift the surface there (0: none; a 'Likeness Hair Volume' modifier)."""
    scene = scene or bpy.context.scene
    view_layer = bpy.context.view_layer if scene == bpy.context.scene else scene.view_layers[0]
    return build.import_bundle(path, scene, view_layer, hair_cap=hair_cap, hair_volume=hair_volume)


def batch_import(folder: str | Path, scene: bpy.types.Scene | None = None, spacing: float = 0.4, columns: int = 0,
                 contact_sheet: str | Path | None = None, cell: int = 256, samples: int = 16):
    """Import every bundle in ``folder`` (``likeness batch`` output) in a grid, one collection per head; with
    ``contact_sheet`` also render the grid there (Cycles, CPU). Returns a ``batch_import.BatchResult``
    (``heads``, ``skipped`` bundles with the reason, the sheet's ``camera`` and path)."""
    from . import batch_import as batch

    return batch.import_folder(folder, scene or bpy.context.scene, spacing, columns, contact_sheet, cell, samples)


def match_photo_lighting(camera: bpy.types.Object, scene: bpy.types.Scene | None = None) -> bpy.types.World:
    """Light ``scene`` like the photo of a Likeness photo ``camera``: a new world from its estimated light
    (``BundleError`` if the camera has none); the camera becomes active, the view transform Standard."""
    return world.match_photo_lighting(camera, scene or bpy.context.scene)


def reconstruct(photos: list[str | Path], output_dir: str | Path | None = None, texture_size: int = 2048,
                timeout: float = 900.0, model: str | Path | None = None,
                scene: bpy.types.Scene | None = None, refine: bool = False,
                encoder: bool = True, lens_mm: float = 0.0, occlusion: bool = False) -> list[bpy.types.Object]:
    """Reconstruct a head from ``photos`` on the warm backend and import it; blocks until done.

    ``output_dir`` receives the bundle folder (default: the add-on's user folder). ``texture_size`` is in
    pixels. ``model`` is a head-model .npz instead of the installed one. ``refine`` refines the fit against the
    photos' lip edges (slower, see docs/quality.md). ``encoder`` reads the expression with the learned expression
    encoder (the default; the backend reads the landmarks alone where torch is not installed; docs/encoder.md). ``lens_mm`` is the lens (mm, full-frame
    equivalent) of photos whose files carry no EXIF focal length; 0 keeps the backend's 50 mm. ``occlusion``
    divides the head's own occlusion (eye sockets, creases) out of the skin as well (docs/quality.md, section 4).
    Raises ``BackendError`` of kind ``Timeout`` if it takes longer than ``timeout`` seconds: the job is cancelled,
    and if it does not end within ``jobs.CANCEL_GRACE`` seconds more the backend is killed (the next job starts a
    fresh one).
    """
    scene = scene or bpy.context.scene
    folder = Path(output_dir) if output_dir is not None else paths.output_folder("")
    request = jobs.start_reconstruct(scene, [str(p) for p in photos], folder, texture_size,
                                     str(model) if model else "", refine, encoder, lens_mm, occlusion)
    timed_out = _wait(request, timeout)
    error = request.context.get("error")
    if timed_out and getattr(error, "kind", "") == "Cancelled":
        raise BackendError(f"The reconstruction took longer than {timeout:.0f} s and was cancelled.",
                           "Use a larger timeout, smaller photos or a smaller texture size.", kind="Timeout")
    if error is not None:
        raise error
    return request.context["objects"]


def animate_video(video: str | Path, output_dir: str | Path | None = None,
                  objects: list[bpy.types.Object] | None = None, add_rig: bool = True, timeout: float = 3600.0,
                  model: str | Path | None = None, texture_size: int = 1024,
                  scene: bpy.types.Scene | None = None, encoder: bool = True) -> list[bpy.types.Object]:
    """Track ``video`` on the warm backend, then animate ``objects`` (meshes with ARKit-named shape keys) or,
    by default, a new head built from the video (``texture_size`` px); blocks until done. Returns
    ``[animated objects..., camera]`` (the new head's rig, when added, is its parent). ``output_dir`` receives the
    track folder (docs/animation.md). ``encoder`` reads the expression with the learned expression encoder (the
    default; landmarks alone where the backend has no torch).
    """
    scene = scene or bpy.context.scene
    folder = Path(output_dir) if output_dir is not None else paths.output_folder("")
    if objects is not None:
        for obj in bpy.context.selected_objects:
            obj.select_set(False)
        for obj in objects:
            obj.select_set(True)
    request = anim_ops.start_track(scene, str(video), folder, "SELECTED" if objects is not None else "NEW_HEAD",
                                   add_rig, str(model) if model else "", texture_size, encoder)
    timed_out = _wait(request, timeout, "track")
    error = request.context.get("error")
    if timed_out and getattr(error, "kind", "") == "Cancelled":
        raise BackendError(f"Tracking took longer than {timeout:.0f} s and was cancelled.",
                           "Use a larger timeout or a shorter video.", kind="Timeout")
    if error is not None:
        raise error
    return request.context["objects"]


def edit(head: bpy.types.Object, prompt: str, what: tuple[str, ...] = ("albedo",), strength: float = 0.5,
         steps: int = 200, seed: int = 0, negative_prompt: str = "", region: str | None = None, size: int = 512,
         device: str = "auto", sd_model: str | Path | None = None, model: str | Path | None = None,
         output_dir: str | Path | None = None, timeout: float = 3600.0,
         scene: bpy.types.Scene | None = None) -> list[bpy.types.Object]:
    """Edit the Likeness ``head`` by ``prompt`` on the warm backend (``likeness edit``) and import the result as a
    new head beside it (the old head is kept); blocks until done and returns ``[new head, cameras...]``.

    ``what`` may hold ``albedo``, ``shape``, ``expression``, ``light``; ``strength`` in (0, 1]; ``steps`` of score
    distillation (0: light words only, e.g. ``prompt="warm sunset from the left", what=("light",)``); ``region``
    one of face, skin, lips, eyes, nose, brows, scalp; ``size`` the rendered view in pixels; ``sd_model`` a
    diffusers folder instead of the installed one. ``BackendError`` of kind ``Timeout`` after ``timeout`` s.
    """
    return _run_edit(head, prompt, what, timeout, scene, output_dir, strength=strength, steps=steps, seed=seed,
                     negative_prompt=negative_prompt, region=region, size=size, device=device,
                     sd_model=str(sd_model) if sd_model else None, model=str(model) if model else None)


def create_head(prompt: str, what: tuple[str, ...] = ("albedo", "shape"), strength: float = 0.5, steps: int = 200,
                seed: int = 0, negative_prompt: str = "", size: int = 512, texture_size: int = 1024,
                device: str = "auto", sd_model: str | Path | None = None, model: str | Path | None = None,
                output_dir: str | Path | None = None, timeout: float = 3600.0,
                scene: bpy.types.Scene | None = None) -> list[bpy.types.Object]:
    """A new head from ``prompt`` alone (``likeness create``), starting from the mean head; imported, returned as
    ``[head]``. Options as in :func:`edit`; ``texture_size`` in pixels."""
    return _run_edit(None, prompt, what, timeout, scene, output_dir, strength=strength, steps=steps, seed=seed,
                     negative_prompt=negative_prompt, size=size, device=device, texture_size=texture_size,
                     sd_model=str(sd_model) if sd_model else None, model=str(model) if model else None)


def _run_edit(head, prompt, what, timeout, scene, output_dir, **options) -> list[bpy.types.Object]:
    scene = scene or bpy.context.scene
    folder = Path(output_dir) if output_dir is not None else paths.output_folder("")
    request = edit_ops.start_edit(scene, prompt, head, folder, list(what), apply=True, **options)
    timed_out = _wait(request, timeout, request.kind)
    error = request.context.get("error")
    if timed_out and getattr(error, "kind", "") == "Cancelled":
        raise BackendError(f"The text edit took longer than {timeout:.0f} s and was cancelled.",
                           "Use a larger timeout or fewer steps.", kind="Timeout")
    if error is not None:
        raise error
    return request.context["objects"]


def _wait(request: Request, timeout: float, kind: str = "reconstruct") -> bool:
    """Poll the backend until ``request`` ends; cancels it after ``timeout`` s. True when it was cancelled so."""
    deadline, timed_out = time.monotonic() + timeout, False
    while request.id in SESSION.requests:
        if not timed_out and time.monotonic() > deadline:
            timed_out = jobs.cancel_reconstruct(kind)  # ended by poll_backend: Cancelled, or killed after the grace
        jobs.poll_backend()
        time.sleep(WAIT_INTERVAL)
    return timed_out
