"""``likeness batch``: many reconstruct and track jobs from one spec, on a local process pool or a Ray cluster.

A spec is a folder (one job per person sub-folder of photos, per loose photo, per video), a CSV or JSON job list,
or a glob. Every job writes ``OUT/<name>`` atomically (bundles and track folders are written to a hidden
temporary sibling and renamed), so a finished output is complete and a rerun skips it: a batch stopped or a
worker killed half-way loses no finished output, and running it again completes it. One bad photo fails its
job, with its error in the report, never the batch. Each worker process keeps one warm
:class:`~likeness.service.pipeline.Engine` (head model and landmark detector loaded once). The report
(``OUT/batch_report.json``) lists every job's status, error, time and the worker's peak memory.

The workers (:mod:`likeness.batch_pool` locally, :mod:`likeness.service.batch_ray` on Ray) call :func:`run_job`.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import platform
import re
import resource
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BadInput, LikenessError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
REPORT = "batch_report.json"
#: A job whose worker died is run again this many times before it fails.
RETRIES = 1
#: The file that marks a finished output of each kind (written last, inside the atomically renamed folder).
FINISHED = {"photos": "manifest.json", "video": "track.json"}


@dataclass(frozen=True)
class BatchJob:
    """One job: ``photos`` of one person → a bundle, or one ``video`` → a track folder (with its head)."""

    name: str
    kind: str  # "photos" or "video"
    inputs: tuple[str, ...]
    texture_size: int
    #: photo jobs' reconstruct options (``refine``, ``occlusion``, ``lens_mm``, ``encoder``: ReconstructRequest
    #: fields; video jobs: ``encoder`` only) as (name, value) pairs, the same for every job of a kind in a batch
    #: (``likeness batch --refine --no-encoder ...``)
    options: tuple[tuple[str, object], ...] = ()

    def output(self, out_dir: Path) -> Path:
        return out_dir / self.name

    def finished(self, out_dir: Path) -> bool:
        return (self.output(out_dir) / FINISHED[self.kind]).is_file()


def read_spec(spec: str, texture_size: int = 2048) -> list[BatchJob]:
    """The jobs of a spec: a folder, a ``.csv`` or ``.json`` job list, or a glob pattern."""
    path = Path(spec).expanduser()
    if path.is_dir():
        jobs = _from_folder(path, texture_size)
    elif path.suffix.lower() == ".csv" and path.is_file():
        jobs = _from_rows(_csv_rows(path), path.parent, texture_size)
    elif path.suffix.lower() == ".json" and path.is_file():
        jobs = _from_rows(_json_rows(path), path.parent, texture_size)
    elif any(c in spec for c in "*?["):
        files = [Path(f) for f in sorted(glob.glob(os.path.expanduser(spec), recursive=True))]
        jobs = [_file_job(f, texture_size) for f in files if _kind(f)]
    else:
        raise BadInput(f"The batch spec {spec} is not a folder, a .csv or .json job list, or a glob pattern.",
                       "Pass a folder of photos, a job list, or a quoted pattern such as 'photos/*.jpg'.")
    if not jobs:
        raise BadInput(f"The batch spec {spec} names no photos or videos.",
                       f"Photos end in {', '.join(sorted(IMAGE_SUFFIXES))}; videos in "
                       f"{', '.join(sorted(VIDEO_SUFFIXES))}.")
    return _unique_names(jobs)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "photos" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def _file_job(path: Path, texture_size: int) -> BatchJob:
    kind = _kind(path)
    return BatchJob(_safe_name(path.stem), kind, (str(path.resolve()),), texture_size if kind == "photos"
                    else min(texture_size, 1024))


def _from_folder(folder: Path, texture_size: int) -> list[BatchJob]:
    """A sub-folder of photos is one person (one job); a loose photo or any video is a job of its own."""
    jobs = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(f for f in entry.iterdir() if f.is_file() and not f.name.startswith("."))
            photos = [str(f.resolve()) for f in files if _kind(f) == "photos"]
            if photos:
                jobs.append(BatchJob(_safe_name(entry.name), "photos", tuple(photos), texture_size))
            jobs += [_file_job(f, texture_size) for f in files if _kind(f) == "video"]
        elif _kind(entry):
            jobs.append(_file_job(entry, texture_size))
    return jobs


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not ({"photos", "video"} & set(rows[0])):
        raise BadInput(f"{path.name} has no 'photos' or 'video' column.",
                       "Columns: name, photos (paths separated by ';'), video, texture_size.")
    return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in rows]


def _json_rows(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path.name} is not valid JSON ({exc}).", "See docs/batch.md for the job list format.")
    rows = data.get("jobs") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BadInput(f"{path.name} must hold a list of jobs (or {{\"jobs\": [...]}}).",
                       'Each job: {"name": ..., "photos": [...]} or {"name": ..., "video": ...}.')
    return rows


def _from_rows(rows: list[dict], base: Path, texture_size: int) -> list[BatchJob]:
    jobs = []
    for i, row in enumerate(rows, 1):
        photos, video = row.get("photos"), row.get("video")
        if isinstance(photos, str):
            photos = [p.strip() for p in photos.split(";") if p.strip()]
        if bool(photos) == bool(video):
            raise BadInput(f"Job {i} of the job list needs either photos or a video.",
                           'Give "photos" (a list, or paths separated by ";" in a CSV) or "video".')
        inputs = [str((base / Path(p).expanduser()).resolve()) for p in (photos or [video])]
        try:
            size = int(row.get("texture_size") or (texture_size if photos else min(texture_size, 1024)))
        except (TypeError, ValueError):
            raise BadInput(f"Job {i}: texture_size {row.get('texture_size')!r} is not a number.", "E.g. 1024.")
        name = row.get("name") or Path(inputs[0]).stem
        jobs.append(BatchJob(_safe_name(str(name)), "photos" if photos else "video", tuple(inputs), size))
    return jobs


def _safe_name(name: str) -> str:
    """A folder name: letters, digits, ``-_.``; others become ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "job"
    return cleaned[:100]


def _unique_names(jobs: list[BatchJob]) -> list[BatchJob]:
    seen: dict[str, int] = {}
    unique = []
    for job in jobs:
        count = seen.get(job.name.lower(), 0)
        seen[job.name.lower()] = count + 1
        unique.append(job if count == 0 else replace(job, name=f"{job.name}_{count + 1}"))
    return unique


# ---- the worker side: one warm engine per process ----------------------------------------------------------

_ENGINE = None


def worker_engine(model: str | None = None, warm: bool = True):
    """This process's engine, made once; ``warm`` loads the head model and the landmark detector now."""
    global _ENGINE
    if _ENGINE is None:
        from .pipeline import Engine

        _ENGINE = Engine()
    if warm:
        _ENGINE.model(model)
        _ENGINE.detector()
    return _ENGINE


def run_job(job: BatchJob, out_dir: str, model: str | None = None) -> dict:
    """Run one job in this worker; never raises: the record says ``ok`` or ``failed`` with the error."""
    from .bundle import remove_stale_writes

    out = Path(out_dir)
    record = {"name": job.name, "kind": job.kind, "inputs": list(job.inputs), "output": str(job.output(out)),
              "worker": f"{platform.node()}:{os.getpid()}"}
    start = time.perf_counter()
    try:
        if job.finished(out):  # another run finished it meanwhile
            record.update(status="skipped")
            return record
        remove_stale_writes(job.output(out))  # temporary folders of killed workers
        engine = worker_engine(model)
        encoder = dict(job.options).get("encoder")  # None: the worker's default
        if job.kind == "photos":
            from .pipeline import ReconstructRequest

            result = engine.reconstruct(ReconstructRequest(photos=list(job.inputs), output=str(job.output(out)),
                                                           texture_size=job.texture_size, model=model,
                                                           name=job.name, **dict(job.options)))
        else:
            from ..capture.track import TrackRequest, run_track

            result = run_track(engine, TrackRequest(video=job.inputs[0], output=str(job.output(out)), model=model,
                                                    texture_size=job.texture_size, name=job.name,
                                                    encoder=encoder))
        # whether this worker read the expression with the learned encoder (it needs torch)
        record.update(status="ok", warnings=result.get("warnings", []),
                      expression_encoder=encoder is not False and engine.encoder(engine.model(model)[0]) is not None)
    except LikenessError as exc:
        record.update(status="failed", error=exc.to_dict())
    except Exception as exc:  # noqa: BLE001 - one job's bug must not end the batch
        record.update(status="failed", error={"type": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                                              "hint": "", "traceback": traceback.format_exc(limit=8)})
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["worker_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return record


def init_worker(model: str | None, threads: int) -> None:
    """Set up a worker process: OpenCV's threads, and its warm engine."""
    import cv2

    cv2.setNumThreads(threads)
    try:
        worker_engine(model)
    except LikenessError:  # e.g. the model is missing: each job then says so in the report
        pass


def died(job: BatchJob, out: Path, attempts: int) -> dict:
    """The record of a job whose worker died ``attempts`` times."""
    return {"name": job.name, "kind": job.kind, "inputs": list(job.inputs), "output": str(job.output(out)),
            "status": "failed", "attempts": attempts,
            "error": {"type": "WorkerDied", "message": f"The worker running {job.name} died ({attempts}×).",
                      "hint": "A photo that crashes the backend, or too little memory; run the batch again "
                              "to retry it (finished outputs are kept)."}}
