"""Batch throughput: `likeness batch` on N dev photos with 1 and 2 local workers and on a two-node Ray cluster
started on this machine (`ray start --head` plus a second node, one CPU each); memory per worker; a worker killed
mid-batch (SIGKILL) loses no finished bundle and the batch completes (the lost job is retried), and a rerun
skips every finished bundle.

Usage: .venv/bin/python bench/bench_batch.py [--photos 12] [--texture-size 2048] [--json bench/results/batch.json]
Each run is a real `python -m likeness batch` subprocess; photos/s counts from its start (worker start-up and
model loading included) to its end, as a user sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
IMAGES = sorted((SHARED / "data" / "faces_dev" / "images").glob("dev_*.jpg"))
RAY = Path(sys.executable).parent / "ray"


def model_path() -> str:
    return os.environ.get("LIKENESS_ICT_MODEL") or str(SHARED / "models" / "ict_facekit" / "ict_face_model.npz")


def spec_folder(root: Path, count: int) -> Path:
    spec = root / "spec"
    spec.mkdir(parents=True)
    for photo in IMAGES[:count]:
        (spec / photo.name).symlink_to(photo)
    return spec


def batch(spec: Path, out: Path, size: int, *extra: str, env: dict | None = None, wait: bool = True):
    command = [sys.executable, "-m", "likeness", "batch", str(spec), "-o", str(out), "--texture-size", str(size),
               "--model", model_path(), "--quiet", *extra]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, **(env or {})))
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "batch_report.json").read_text())
    return {"seconds": round(seconds, 2), "photos": report["summary"]["photos_done"],
            "photos_per_s": round(report["summary"]["photos_done"] / seconds, 3),
            "jobs_seconds_median": _median([j["seconds"] for j in report["jobs"] if "seconds" in j]),
            "statuses": {s: sum(j["status"] == s for j in report["jobs"]) for s in ("ok", "skipped", "failed")},
            "worker_peak_rss_mb": report["summary"]["worker_peak_rss_mb"], "workers": report["workers"],
            **({"ray_nodes": report["ray_nodes"]} if "ray_nodes" in report else {})}


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def ray_cluster(tmp: Path) -> tuple[list[subprocess.Popen], str, dict]:
    env = dict(os.environ, RAY_TMPDIR=str(tmp))
    common = ["--num-cpus=1", "--disable-usage-stats", "--block", "--object-store-memory=200000000"]
    address = "127.0.0.1:6391"
    procs = [subprocess.Popen([RAY, "start", "--head", "--port=6391", "--include-dashboard=false", *common],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(10)
    procs.append(subprocess.Popen([RAY, "start", f"--address={address}", *common], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(10)
    return procs, address, env


def killed_worker(spec: Path, out: Path, size: int, *extra: str, env: dict | None = None) -> dict:
    """Kill the worker of the second job mid-job; the batch must complete with every bundle, then a rerun skips."""
    extra = extra or ("--workers", "1")
    proc = batch(spec, out, size, *extra, env=env, wait=False)
    report_file = out / "batch_report.json"
    while not (report_file.is_file() and json.loads(report_file.read_text())["jobs"]):
        time.sleep(0.05)
    first = json.loads(report_file.read_text())["jobs"][0]
    first_mtime = (out / first["name"] / "manifest.json").stat().st_mtime_ns
    time.sleep(0.3)
    os.kill(int(first["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    proc.wait()
    report = json.loads(report_file.read_text())
    result = {"exit_code": proc.returncode, "statuses": sorted({j["status"] for j in report["jobs"]}),
              "retried_jobs": [j["name"] for j in report["jobs"] if j.get("attempts", 1) > 1],
              "first_bundle_untouched": (out / first["name"] / "manifest.json").stat().st_mtime_ns == first_mtime,
              "temporary_folders_left": [p.name for p in out.iterdir() if p.name.startswith(".")]}
    rerun = batch(spec, out, size, *extra, env=env)
    rerun_report = json.loads(report_file.read_text())
    result["rerun_statuses"] = sorted({j["status"] for j in rerun_report["jobs"]})
    result["rerun_seconds"] = rerun["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    results = {"cpu_cores": os.cpu_count(), "load_before": os.getloadavg(), "photos": args.photos,
               "texture_size": args.texture_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = spec_folder(root, args.photos)
        for workers in (1, 2):
            results[f"local_{workers}"] = batch(spec, root / f"local{workers}", args.texture_size,
                                                "--workers", str(workers))
            print(f"local, {workers} worker(s): {results[f'local_{workers}']}", flush=True)
        if not args.skip_ray:
            procs, address, env = ray_cluster(root / "ray")
            try:
                results["ray_2_nodes"] = batch(spec, root / "ray_out", args.texture_size, "--ray", address, env=env)
                print(f"Ray, two nodes: {results['ray_2_nodes']}", flush=True)
                results["ray_killed_worker"] = killed_worker(spec_folder(root / "ray_kill", 4), root / "ray_kill_out",
                                                             args.texture_size, "--ray", address, env=env)
                print(f"Ray, killed worker: {results['ray_killed_worker']}", flush=True)
            finally:
                for p in procs[::-1]:
                    p.send_signal(signal.SIGTERM)
                for p in procs[::-1]:
                    p.wait(timeout=60)
        small = spec_folder(root / "kill", 4)
        results["killed_worker"] = killed_worker(small, root / "kill_out", args.texture_size)
        print(f"killed worker: {results['killed_worker']}", flush=True)
    results["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
