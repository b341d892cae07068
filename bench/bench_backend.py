"""Backend speed: cold start, warm photo → bundle at each texture size, where the time goes, peak memory.

Usage: .venv/bin/python bench/bench_backend.py [--sizes 2048,1024] [--photos 8]
                                               [--json bench/results/backend_speed.json]
Reads the dev photos and the ICT model from ../shared (or LIKENESS_ICT_MODEL). Cold start is a fresh
`likeness serve` process to its first finished bundle, once with the UV-rasterisation disk cache filled (every
run after the first on a machine) and once with an empty cache (the very first run). Prints a table; figures go
into the README by hand, with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `likeness` sets it for the CLI and the server

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PHOTOS = sorted((SHARED / "data" / "faces_dev" / "images").glob("dev_0[0-3]*_london_*.jpg"))


def model_path() -> str:
    return os.environ.get("LIKENESS_ICT_MODEL") or str(SHARED / "models" / "ict_facekit" / "ict_face_model.npz")


def cold_start(tmp: Path, size: int, cache_dir: str | None) -> dict:
    """A fresh `likeness serve` process: time to the ready line, and to the first finished bundle."""
    env = dict(os.environ, **({"LIKENESS_CACHE_DIR": cache_dir} if cache_dir else {}))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "likeness", "serve", "--log", str(tmp / "serve.log")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    json.loads(proc.stdout.readline())
    ready = time.perf_counter() - start
    out = tmp / f"cold{time.monotonic_ns()}"
    request = {"id": "1", "op": "reconstruct", "params": {"photos": [str(PHOTOS[0])], "output": str(out),
                                                         "texture_size": size, "model": model_path()}}
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    marks = [("start", time.perf_counter())]
    while (event := json.loads(proc.stdout.readline()))["type"] not in ("result", "error"):
        marks.append((event.get("stage", "?"), time.perf_counter()))
    first = time.perf_counter() - start
    assert event["type"] == "result", event
    marks.append(("end", time.perf_counter()))
    stages: dict[str, float] = {"request": marks[1][1] - marks[0][1]}  # until the job's first progress line
    for (stage, t0), (_, t1) in zip(marks[1:], marks[2:]):
        stages[stage] = stages.get(stage, 0.0) + t1 - t0
    proc.stdin.write('{"id": "q", "op": "shutdown"}\n')
    proc.stdin.flush()
    proc.wait()
    return {"ready_s": ready, "first_bundle_s": first, "stages_s": stages}


def warm(tmp: Path, size: int, count: int) -> dict:
    from likeness.service.pipeline import Engine, ReconstructRequest

    engine = Engine()
    engine.reconstruct(ReconstructRequest([str(PHOTOS[0])], str(tmp / f"warmup{size}"), size, model_path()))
    totals, cpus, stages = [], [], {}
    for i, photo in enumerate((PHOTOS * 4)[:count]):
        marks = []
        start, cpu = time.perf_counter(), time.process_time()
        engine.reconstruct(ReconstructRequest([str(photo)], str(tmp / f"w{size}_{i}"), size, model_path()),
                           report=lambda stage, f, m: marks.append((stage, time.perf_counter())))
        totals.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)  # all threads: what the job costs the machine
        marks.insert(0, ("start", start))
        for (stage, t0), (_, t1) in zip(marks, marks[1:]):  # a mark opens its stage; the next one closes it
            stages.setdefault(stage, []).append(t1 - t0)
    per_stage = {k: sum(v) / len(totals) for k, v in stages.items() if k != "start"}
    return {"warm_median_s": statistics.median(totals), "warm_min_s": min(totals), "warm_max_s": max(totals),
            "cpu_median_s": statistics.median(cpus),
            "stages_mean_s": per_stage, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2048,1024")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()
    results = {"cpu_cores": os.cpu_count(), "load_before": load, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        empty_cache = str(Path(tmp) / "empty-cache")  # inside tmp, so it goes with it
        results["cold_empty_cache"] = cold_start(Path(tmp), sizes[0], empty_cache)
        results["cold"] = cold_start(Path(tmp), sizes[0], None)
        for size in sizes:
            results["sizes"][size] = warm(Path(tmp), size, args.photos)
    results["load_after"] = os.getloadavg()
    print(f"{os.cpu_count()} CPU cores, load average before {load[0]:.2f}, after {results['load_after'][0]:.2f}; "
          f"{args.photos} warm jobs per size")
    for key, label in (("cold", "UV cache filled"), ("cold_empty_cache", "empty UV cache (first run ever)")):
        c = results[key]
        print(f"cold ({label}), {sizes[0]}²: ready {c['ready_s']:.2f} s, first bundle {c['first_bundle_s']:.2f} s "
              f"({', '.join(f'{k} {v:.2f}' for k, v in c['stages_s'].items())})")
    for size, hot in results["sizes"].items():
        print(f"warm photo → bundle {size}²: median {hot['warm_median_s']:.3f} s (min {hot['warm_min_s']:.3f}, "
              f"max {hot['warm_max_s']:.3f}); CPU time {hot['cpu_median_s']:.3f} s; peak memory "
              f"{hot['peak_rss_mb']:.0f} MB")
        for stage, seconds in hot["stages_mean_s"].items():
            print(f"  {stage:10s} {seconds * 1000:7.0f} ms")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
