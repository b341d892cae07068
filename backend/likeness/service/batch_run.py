"""Running a batch (:mod:`likeness.service.batch`): the local process pool, progress, the summary table and the report.

Locally, ``workers`` spawned processes each keep one warm engine; at most one job per worker is in flight, so
when a worker dies (killed, out of memory, a native crash) only the jobs it and its pool held are lost: those
are run again once in a fresh pool, and fail (``WorkerDied``) if they are lost again. On Ray
(:mod:`likeness.service.batch_ray`) the same happens with actors.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from .batch import REPORT, RETRIES, BatchJob, died, init_worker, run_job

def run_batch(jobs: list[BatchJob], out_dir: str | Path, workers: int = 1, ray_address: str | None = None,
              model: str | None = None, spec: str = "", show_progress: bool = True) -> dict:
    """Run the jobs (skipping finished outputs), write ``out_dir/batch_report.json``, return the report."""
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    records = {job.name: {"name": job.name, "kind": job.kind, "inputs": list(job.inputs),
                          "output": str(job.output(out)), "status": "skipped"}
               for job in jobs if job.finished(out)}
    todo = [job for job in jobs if job.name not in records]
    options = next((dict(job.options) for job in jobs if job.options), {})
    report = {"spec": spec, "output": str(out), "backend": "ray" if ray_address else "local", "workers": workers,
              "ray_address": ray_address, "likeness_version": __version__, "options": options,
              "started_utc": _utc(started), "jobs": []}
    progress = Progress(len(jobs), len(records), show_progress)
    if ray_address:
        from .batch_ray import ray_results

        results = ray_results(todo, out, workers, ray_address, model, report)
    else:
        results = local_results(todo, out, workers, model)
    for record in results:
        records[record["name"]] = record
        progress.update(record)
        report["jobs"] = _ordered(jobs, records)
        write_report(out, report, started)
    progress.close()
    report["jobs"] = _ordered(jobs, records)
    return write_report(out, report, started)


def local_results(jobs: list[BatchJob], out: Path, workers: int, model: str | None) -> Iterator[dict]:
    """Records of the jobs as they finish, from ``workers`` spawned processes with one warm engine each."""
    workers = max(1, min(workers, len(jobs))) if jobs else 0
    queue = [(job, 0) for job in jobs]
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    pool, running = None, {}
    try:
        while queue or running:
            if pool is None:
                pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=init_worker, initargs=(model, threads))
            while queue and len(running) < workers:
                job, tries = queue.pop(0)
                running[pool.submit(run_job, job, str(out), model)] = (job, tries)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                job, tries = running.pop(future)
                record = _result(future, job, out)
                if record is None:  # its worker died
                    broken = True
                    if tries < RETRIES:
                        queue.insert(0, (job, tries + 1))
                        continue
                    record = died(job, out, tries + 1)
                record["attempts"] = tries + 1
                yield record
            if broken:  # the pool is unusable now: the jobs still running in it are lost too
                for future, (job, tries) in running.items():
                    queue.insert(0, (job, tries + 1) if tries < RETRIES else (job, tries))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _result(future: Future, job: BatchJob, out: Path) -> dict | None:
    try:
        return future.result()
    except BrokenProcessPool:
        return None
    except Exception as exc:  # noqa: BLE001 - e.g. a job that cannot be pickled
        return {"name": job.name, "kind": job.kind, "inputs": list(job.inputs), "output": str(job.output(out)),
                "status": "failed", "error": {"type": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                                              "hint": ""}}


def _ordered(jobs: list[BatchJob], records: dict) -> list[dict]:
    return [records[job.name] for job in jobs if job.name in records]


def write_report(out: Path, report: dict, started: float) -> dict:
    """Fill in the summary and write the report atomically; returns it."""
    jobs = report["jobs"]
    counts = {s: sum(j["status"] == s for j in jobs) for s in ("ok", "skipped", "failed")}
    elapsed = time.time() - started
    photos = sum(len(j["inputs"]) for j in jobs if j["status"] == "ok" and j["kind"] == "photos")
    rss = {}
    for j in jobs:
        if "worker_peak_rss_mb" in j:
            rss[j["worker"]] = max(rss.get(j["worker"], 0.0), j["worker_peak_rss_mb"])
    report["summary"] = {**counts, "jobs": len(jobs), "seconds": round(elapsed, 2),
                         "photos_done": photos, "photos_per_s": round(photos / elapsed, 3) if elapsed else 0.0,
                         "worker_peak_rss_mb": rss}
    report["finished_utc"] = _utc(time.time())
    tmp = out / f".{REPORT}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out / REPORT)
    return report


def summary_table(report: dict) -> str:
    """A plain-text table of the jobs and the totals."""
    lines = [f"{'job':32s} {'kind':6s} {'status':8s} {'seconds':>8s}  error"]
    for j in report["jobs"]:
        error = j.get("error", {})
        text = f"{error.get('type', '')}: {error.get('message', '')}" if error else ""
        seconds = f"{j['seconds']:.1f}" if "seconds" in j else "-"
        lines.append(f"{j['name'][:32]:32s} {j['kind']:6s} {j['status']:8s} {seconds:>8s}  {text}")
    s = report["summary"]
    rss = ", ".join(f"{v:.0f}" for v in s["worker_peak_rss_mb"].values()) or "-"
    lines.append(f"{s['ok']} ok, {s['skipped']} skipped (finished before), {s['failed']} failed of {s['jobs']} "
                 f"in {s['seconds']:.1f} s: {s['photos_per_s']:.2f} photos/s; worker peak memory MB: {rss}")
    return "\n".join(lines)


class Progress:
    """A progress bar on stderr (tqdm when installed and stderr is a terminal, else one line per job)."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self.start = total, done, enabled, time.time()
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, unit="job", file=sys.stderr)
            except ImportError:
                pass

    def update(self, record: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{record['name']}: {record['status']}")
            self.bar.update(1)
        elif self.enabled:
            error = f" ({record['error']['type']}: {record['error']['message']})" if "error" in record else ""
            print(f"[{self.done}/{self.total}] {record['name']}: {record['status']}{error}", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
