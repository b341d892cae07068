"""``likeness batch --ray ADDRESS``: the jobs of a batch on a Ray cluster (``pip install likeness[ray]``).

One Ray actor per worker, each with one warm :class:`~likeness.service.pipeline.Engine`; jobs go to whichever actor is
free. Every node needs this version of Likeness installed in the Python that runs Ray, and must see the inputs
and the output folder under the same paths (a shared file system). ``LIKENESS_*`` environment variables of the
driver (model locations) are passed to the actors. An actor that dies (node lost, killed, out of memory) is
replaced and its job run again once (:data:`likeness.service.batch.RETRIES`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .batch import RETRIES, BatchJob, died, init_worker, run_job
from ..errors import BadInput

#: Environment variables the actors get from the driver.
FORWARD = ("LIKENESS_", "OPENBLAS_NUM_THREADS", "GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")


class EngineWorker:
    """A Ray actor holding one warm engine (made a remote class by :func:`ray_results`)."""

    def __init__(self, model: str | None, threads: int) -> None:
        init_worker(model, threads)

    def run(self, job: BatchJob, out: str, model: str | None) -> dict:
        record = run_job(job, out, model)
        import ray

        record["node"] = ray.get_runtime_context().get_node_id()
        return record


def ray_results(jobs: list[BatchJob], out: Path, workers: int, address: str, model: str | None,
                report: dict) -> Iterator[dict]:
    """Records of the jobs as they finish on the cluster at ``address`` (``auto``: the local one)."""
    try:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError
    except ImportError as exc:
        raise BadInput("Ray is not installed.", "pip install 'likeness[ray]' (in every node's environment).") from exc
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARD)}
    try:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False, ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BadInput(f"Cannot connect to the Ray cluster at {address}: {exc}",
                       "Start one with `ray start --head` and pass its address (host:port), or `auto`.") from exc
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(workers or cpus, len(jobs))) if jobs else 0
        report.update(workers=count, ray_nodes=len([n for n in ray.nodes() if n.get("Alive")]), ray_cpus=cpus)
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(EngineWorker)
        idle = [actor_class.remote(model, 1) for _ in range(count)]
        queue = [(job, 0) for job in jobs]
        running: dict = {}
        while queue or running:
            while queue and idle:
                job, tries = queue.pop(0)
                actor = idle.pop()
                running[actor.run.remote(job, str(out), model)] = (job, tries, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            job, tries, actor = running.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except (RayActorError, WorkerCrashedError):
                ray.kill(actor, no_restart=True)
                idle.append(actor_class.remote(model, 1))  # a fresh actor in its place
                if tries < RETRIES:
                    queue.insert(0, (job, tries + 1))
                    continue
                record = died(job, out, tries + 1)
            else:
                idle.append(actor)
            record["attempts"] = tries + 1
            yield record
    finally:
        ray.shutdown()
