"""The backend's job registry: named operations the server runs on its worker thread.

A job is ``fn(engine, params, report, cancelled) -> dict``. New capabilities (relighting, text edits, other
head models) register here and become available to ``likeness serve`` without touching the protocol code.
"""

from __future__ import annotations

from typing import Callable

from ..errors import BadRequest
from .pipeline import Engine, ReconstructRequest, Report

Job = Callable[[Engine, dict, Report, Callable[[], bool]], dict]
JOBS: dict[str, Job] = {}


def job(name: str) -> Callable[[Job], Job]:
    """Register a job under an op name."""
    def register(fn: Job) -> Job:
        JOBS[name] = fn
        return fn
    return register


def _flag(params: dict, key: str, default: bool) -> bool:
    """A yes/no parameter: a JSON boolean (or 0/1); anything else, the string "false" included, is refused."""
    value = params.get(key, default)
    if value is None:
        return default
    if _is_boolean(value):
        return bool(value)
    raise BadRequest(f"`{key}` must be true or false, not {value!r}.", "See docs/protocol.md.")


def _is_boolean(value) -> bool:
    """A JSON boolean, or the integer 0 or 1."""
    return isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))


@job("reconstruct")
def reconstruct(engine: Engine, params: dict, report: Report, cancelled: Callable[[], bool]) -> dict:
    photos = params.get("photos")
    if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
        raise BadRequest("`photos` must be a list of file paths.", "Send {\"photos\": [\"/path/a.jpg\"], ...}.")
    if not isinstance(params.get("output"), str):
        raise BadRequest("`output` must be the path of the bundle folder to create.", "")
    try:
        request = ReconstructRequest(photos=photos, output=params["output"],
                                     texture_size=int(params.get("texture_size") or 2048),
                                     model=params.get("model"), name=params.get("name"),
                                     device=str(params.get("device") or "auto"),
                                     refine=_flag(params, "refine", False),
                                     encoder=_encoder(params.get("encoder")),
                                     lens_mm=None if params.get("lens_mm") in (None, 0) else float(params["lens_mm"]),
                                     occlusion=_flag(params, "occlusion", False))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Bad reconstruct parameters: {exc}.", "See docs/protocol.md.") from exc
    return engine.reconstruct(request, report, cancelled)


def _encoder(value) -> bool | str | None:
    """The job's ``encoder``: null (the backend's setting), a boolean (the learned encoder), or "smirk"."""
    if value is None or value == "smirk":
        return value
    if value == "learned":  # as the CLI's --encoder learned
        return True
    if _is_boolean(value):
        return bool(value)
    raise BadRequest(f"`encoder` must be true, false, null, \"learned\" or \"smirk\", not {value!r}.",
                     "See docs/protocol.md.")


@job("track")
def track(engine: Engine, params: dict, report: Report, cancelled: Callable[[], bool]) -> dict:
    from ..capture.track import TrackRequest, run_track

    if not isinstance(params.get("video"), str) or not isinstance(params.get("output"), str):
        raise BadRequest("`video` must be a video file path and `output` the folder to create.",
                         "Send {\"video\": \"/path/clip.mp4\", \"output\": \"/out/clip_track\"}.")
    try:
        request = TrackRequest(video=params["video"], output=params["output"], model=params.get("model"),
                               head=_flag(params, "head", True),
                               texture_size=int(params.get("texture_size") or 1024),
                               smooth=_flag(params, "smooth", True),
                               blendshapes=_flag(params, "blendshapes", False),
                               max_frames=int(params["max_frames"]) if params.get("max_frames") else None,
                               name=params.get("name"), encoder=_encoder(params.get("encoder")),
                               device=params.get("device") or "auto")
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Bad track parameters: {exc}.", "See docs/protocol.md.") from exc
    return run_track(engine, request, report, cancelled)


def _edit_request(params: dict, create: bool):
    from ..edit.job import EditRequest, parse_what

    if not isinstance(params.get("prompt"), str) or not isinstance(params.get("output"), str):
        raise BadRequest("`prompt` must be a text and `output` the bundle folder to create.", "See docs/protocol.md.")
    if not create and not isinstance(params.get("bundle"), str):
        raise BadRequest("`bundle` must be the path of the bundle to edit.", "See docs/protocol.md.")
    try:
        return EditRequest(
            prompt=params["prompt"], output=params["output"], bundle=None if create else params["bundle"],
            negative_prompt=str(params.get("negative_prompt") or ""),
            what=parse_what(params.get("what") or ("albedo,shape" if create else "albedo")),
            strength=float(params.get("strength", 0.5)), steps=int(params.get("steps", 200)),
            seed=int(params.get("seed", 0)), device=str(params.get("device") or "auto"),
            region=params.get("region") or None, size=int(params.get("size") or 512),
            guidance_scale=float(params.get("guidance_scale", 7.5)), sd_model=params.get("sd_model"),
            model=params.get("model"), texture_size=int(params.get("texture_size") or 1024),
            name=params.get("name"))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Bad edit parameters: {exc}.", "See docs/protocol.md.") from exc


@job("edit")
def edit(engine: Engine, params: dict, report: Report, cancelled: Callable[[], bool]) -> dict:
    """A text edit of a bundle (likeness.edit): a new bundle beside the old one."""
    from ..edit.job import run

    return run(engine, _edit_request(params, create=False), report, cancelled)


@job("create")
def create(engine: Engine, params: dict, report: Report, cancelled: Callable[[], bool]) -> dict:
    """Text → a new head from the mean head (likeness.edit)."""
    from ..edit.job import run

    return run(engine, _edit_request(params, create=True), report, cancelled)
