"""The backend's job registry: named operations the server runs on its worker thread.

A job is ``fn(engine, params, report, cancelled) -> dict``. New capabilities (relighting, text edits, other
head models) register here and become available to ``likeness serve`` without touching the protocol code.
"""

from __future__ import annotations

from typing import Callable

from .errors import BadRequest
from .pipeline import Engine, ReconstructRequest, Report

Job = Callable[[Engine, dict, Report, Callable[[], bool]], dict]
JOBS: dict[str, Job] = {}


def job(name: str) -> Callable[[Job], Job]:
    """Register a job under an op name."""
    def register(fn: Job) -> Job:
        JOBS[name] = fn
        return fn
    return register


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
                                     refine=bool(params.get("refine", False)),
                                     encoder=None if params.get("encoder") is None else bool(params["encoder"]))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Bad reconstruct parameters: {exc}.", "See docs/protocol.md.") from exc
    return engine.reconstruct(request, report, cancelled)


@job("track")
def track(engine: Engine, params: dict, report: Report, cancelled: Callable[[], bool]) -> dict:
    from .track import TrackRequest, run_track

    if not isinstance(params.get("video"), str) or not isinstance(params.get("output"), str):
        raise BadRequest("`video` must be a video file path and `output` the folder to create.",
                         "Send {\"video\": \"/path/clip.mp4\", \"output\": \"/out/clip_track\"}.")
    try:
        request = TrackRequest(video=params["video"], output=params["output"], model=params.get("model"),
                               head=bool(params.get("head", True)),
                               texture_size=int(params.get("texture_size") or 1024),
                               smooth=bool(params.get("smooth", True)),
                               blendshapes=bool(params.get("blendshapes", False)),
                               max_frames=int(params["max_frames"]) if params.get("max_frames") else None,
                               name=params.get("name"))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Bad track parameters: {exc}.", "See docs/protocol.md.") from exc
    return run_track(engine, request, report, cancelled)
