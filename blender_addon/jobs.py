"""Backend requests driven from Blender: start them, poll their events from a timer, import results.

:func:`poll_backend` is the ``bpy.app.timers`` callback. It is a plain module-level function so that
background-mode scripts and tests (where timers never fire) can call it by hand until it returns ``None``.
A cancelled job that does not end within :data:`CANCEL_GRACE` seconds (a hung backend only checks for Cancel
between stages) gets its backend killed by that callback; the next job starts a fresh one.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import bpy

from . import build, paths
from .errors import BackendError, LikenessError
from .session import SESSION, Request

#: Seconds between two polls of the backend while a request is in flight.
POLL_INTERVAL = 0.2
#: Seconds a cancelled job gets to end before its backend process is killed.
CANCEL_GRACE = 5.0
MODEL_MISSING_HINT = ("Press 'Set up backend' in the Likeness add-on preferences: it installs the head model "
                      "(or choose an existing model file).")
#: What to do with the result of other job kinds (``track``: see ``anim_ops``): ``fn(request, result)``.
FINISHERS: dict[str, Any] = {}


class CheckStatus:
    """Outcome of the last 'Check' in the preferences (text shown there)."""

    text = ""
    is_error = False


def set_status_bar(text: str | None) -> None:
    """Show ``text`` in the status bar of every window (``None`` restores the default status bar)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        workspace = getattr(window, "workspace", None)
        if workspace is not None:
            workspace.status_text_set(text)
        for area in window.screen.areas if window.screen else []:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(poll_backend):
        bpy.app.timers.register(poll_backend, first_interval=0.1, persistent=True)


def job_name(photo: str | Path) -> str:
    """A collection/folder name from a photo's file name (letters, digits, '-', '_')."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(photo).stem).strip("_")
    return name or "head"


def unique_output(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/name_2``, ``_3``, ... if taken (the backend refuses existing folders)."""
    candidate, n = folder / name, 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{name}_{n}"
    return candidate


def start_reconstruct(scene: bpy.types.Scene, photos: list[str], output_dir: Path, texture_size: int,
                      model: str = "", refine: bool = False, encoder: bool | str = True,
                      lens_mm: float = 0.0, occlusion: bool = False) -> Request:
    """Send a ``reconstruct`` job for ``photos`` to the warm backend; its result is imported into ``scene``.
    ``refine`` asks for the refinement against the photos after the landmark fit; ``encoder`` for the learned
    expression encoder (true) or SMIRK (``"smirk"``; with ``model="flame"`` a FLAME head, docs/flame_smirk.md);
    ``lens_mm`` is the lens (mm, full-frame equivalent) of photos without EXIF, 0 for the backend's default;
    ``occlusion`` divides the head's own occlusion out of the skin too."""
    if SESSION.active("reconstruct") is not None:
        raise LikenessError("A reconstruction is already running.", "Wait for it to finish or press Cancel.")
    missing = [p for p in photos if not Path(p).is_file()]
    if not photos or missing:
        raise LikenessError(f"Photo not found: {missing[0]}" if missing else "No photos were given.",
                            "Add reference photos in the Likeness panel.")
    paths.ensure_backend()
    output_dir = Path(output_dir).expanduser().resolve()
    name = job_name(photos[0])
    output = unique_output(output_dir, name)
    output_dir.mkdir(parents=True, exist_ok=True)
    params = {"photos": [str(Path(p).resolve()) for p in photos], "output": str(output),
              "texture_size": int(texture_size), "name": name, "model": model or None, "refine": bool(refine),
              "encoder": encoder if encoder == "smirk" else bool(encoder), "lens_mm": float(lens_mm) or None,
              "occlusion": bool(occlusion)}
    request = SESSION.submit("reconstruct", params, {"scene": scene.name, "output": str(output)})
    _show_progress(scene, 0.0, "Starting the backend...", is_error=False)
    ensure_timer()
    return request


def start_check() -> Request:
    """Send ``hello``; the answer (versions, model status) lands in :class:`CheckStatus`."""
    CheckStatus.text, CheckStatus.is_error = "Starting the backend...", False
    paths.ensure_backend()
    request = SESSION.submit("hello", None)
    ensure_timer()
    return request


def cancel_reconstruct(kind: str = "reconstruct") -> bool:
    """Ask the backend to cancel the running job of ``kind`` (``reconstruct``, ``track``); False if none is running.

    Returns at once. If the job has not ended :data:`CANCEL_GRACE` s later, :func:`poll_backend` kills the
    backend and ends the job as cancelled.
    """
    request = SESSION.active(kind)
    if request is None or SESSION.client is None:
        return False
    if request.cancel_deadline is None:
        request.cancel_deadline = time.monotonic() + CANCEL_GRACE
    try:
        SESSION.client.cancel(request.id)
    except BackendError:  # the backend already stopped: its requests end with an error event anyway
        pass
    request.message = "Cancelling..."
    _show_progress(_scene(request), request.fraction, request.message, is_error=False)
    return True


def poll_backend() -> float | None:
    """Timer callback: handle all pending backend events; the next interval in seconds, or None when idle."""
    client = SESSION.client
    if client is None:
        return None
    for event in client.poll():
        request = SESSION.requests.get(str(event.get("id")))
        if request is not None:
            _handle(request, event)
    now = time.monotonic()
    if any(r.cancel_deadline is not None and now > r.cancel_deadline for r in SESSION.requests.values()):
        _kill_backend()
    return POLL_INTERVAL if SESSION.requests else None


def _kill_backend() -> None:
    """A cancelled job did not end in time: kill the backend and end every request it still had."""
    if SESSION.client is not None:
        SESSION.client.kill()
    SESSION.client = None  # the next job starts a fresh backend
    for request in list(SESSION.requests.values()):
        SESSION.requests.pop(request.id, None)
        if request.cancel_deadline is not None:
            request.context["error"] = BackendError(
                f"Cancelled. The backend did not stop the job within {CANCEL_GRACE:g} s, so it was stopped.",
                "The next job starts a fresh backend.", kind="Cancelled")
        else:
            request.context["error"] = BackendError(
                "The backend was stopped because a cancelled job did not respond.", "Start it again.",
                kind="BackendStopped")
        _finish_error(request)


def _handle(request: Request, event: dict[str, Any]) -> None:
    kind = event.get("type")
    if kind == "progress":
        request.fraction = float(event.get("fraction") or 0.0)
        if request.cancel_deadline is None:
            request.message = str(event.get("message") or event.get("stage") or "")
        if request.kind != "hello":
            _show_progress(_scene(request), request.fraction, request.message, is_error=False)
        return
    if kind not in ("result", "error"):
        return
    SESSION.requests.pop(request.id, None)
    if kind == "error":
        error = event.get("error") or {}
        error_type = str(error.get("type", "Error"))
        # the backend's ModelMissing hint names a terminal command; in Blender, Set up backend installs the model
        hint = MODEL_MISSING_HINT if error_type == "ModelMissing" else str(error.get("hint", ""))
        request.context["error"] = BackendError(str(error.get("message", "The backend reported an error.")),
                                                hint, kind=error_type)
        _finish_error(request)
    elif request.kind == "reconstruct":
        _finish_reconstruct(request, event.get("result") or {})
    elif request.kind == "hello":
        _finish_check(event.get("result") or {})
    elif request.kind in FINISHERS:
        FINISHERS[request.kind](request, event.get("result") or {})


def _scene(request: Request) -> bpy.types.Scene | None:
    return bpy.data.scenes.get(request.context.get("scene", "")) or bpy.context.scene


def _show_progress(scene: bpy.types.Scene | None, fraction: float, message: str, is_error: bool) -> None:
    if scene is not None:
        settings = scene.likeness
        settings.progress, settings.status, settings.status_is_error = fraction, message, is_error
    set_status_bar(None if is_error or fraction >= 1.0 else f"Likeness: {message} ({fraction:.0%})")


def _finish_error(request: Request) -> None:
    error: BackendError = request.context["error"]
    if request.kind == "hello":
        CheckStatus.text, CheckStatus.is_error = str(error), True
    else:
        _show_progress(_scene(request), 0.0, str(error), is_error=True)
    print(f"Likeness: {error}")


def _finish_reconstruct(request: Request, result: dict[str, Any]) -> None:
    scene = _scene(request)
    try:
        view_layer = bpy.context.view_layer if bpy.context.scene == scene else None
        view_layer = view_layer or scene.view_layers[0]
        objects = build.import_bundle(result.get("bundle", request.context["output"]), scene, view_layer,
                                      hair_volume=scene.likeness.hair_volume)
    except LikenessError as exc:
        request.context["error"] = exc
        _finish_error(request)
        return
    request.context["objects"] = objects
    warnings = result.get("warnings") or []
    note = f" ({len(warnings)} warning{'s' * (len(warnings) != 1)}: {warnings[0]})" if warnings else ""
    _show_progress(scene, 1.0, f"Imported '{objects[0].users_collection[0].name}'{note}", is_error=False)
    try:
        bpy.ops.ed.undo_push(message="Likeness Reconstruct")
    except RuntimeError:  # no window to record undo in (background mode)
        pass


def _finish_check(result: dict[str, Any]) -> None:
    models = result.get("models") or {}
    model_text = ", ".join(f"{name} {_model_state(status)}" for name, status in models.items()) or "none"
    CheckStatus.text = (f"Backend {result.get('backend_version', '?')} (Python {result.get('python', '?')}, "
                        f"protocol {result.get('protocol', '?')}); models: {model_text}")
    CheckStatus.is_error = False
    set_status_bar(None)


def _model_state(status: Any) -> str:
    """'installed' / 'missing' from a model entry of ``hello`` (a dict with ``installed``, or a plain string)."""
    if isinstance(status, dict):
        return "installed" if status.get("installed") else "missing"
    return str(status)
