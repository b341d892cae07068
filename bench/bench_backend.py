"""Backend speed: cold start, warm photo → bundle, where the time goes, peak memory.

Usage: .venv/bin/python bench/bench_backend.py [--texture-size 2048] [--photos N]
Reads the dev photos and the ICT model from ../shared (or LIKENESS_ICT_MODEL). Prints a table; figures go
into the README by hand, with the machine they were measured on.
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


def cold_start(tmp: Path, size: int) -> dict:
    """A fresh `likeness serve` process: time to the ready line, and to the first finished bundle."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "likeness", "serve", "--log", str(tmp / "serve.log")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    json.loads(proc.stdout.readline())
    ready = time.perf_counter() - start
    request = {"id": "1", "op": "reconstruct", "params": {"photos": [str(PHOTOS[0])], "output": str(tmp / "cold"),
                                                         "texture_size": size, "model": model_path()}}
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    while json.loads(proc.stdout.readline())["type"] not in ("result", "error"):
        pass
    first = time.perf_counter() - start
    proc.stdin.write('{"id": "q", "op": "shutdown"}\n')
    proc.stdin.flush()
    proc.wait()
    return {"ready_s": ready, "first_bundle_s": first}


def warm(tmp: Path, size: int, count: int) -> dict:
    from likeness.pipeline import Engine, ReconstructRequest

    engine = Engine()
    engine.reconstruct(ReconstructRequest([str(PHOTOS[0])], str(tmp / "warmup"), size, model_path()))
    totals, stages = [], {}
    for i, photo in enumerate(PHOTOS[:count]):
        marks = []
        start = time.perf_counter()
        engine.reconstruct(ReconstructRequest([str(photo)], str(tmp / f"w{i}"), size, model_path()),
                           report=lambda stage, f, m: marks.append((stage, time.perf_counter())))
        totals.append(time.perf_counter() - start)
        for (stage, t0), (_, t1) in zip(marks, marks[1:]):
            stages.setdefault(stage, []).append(t1 - t0)
    per_stage = {k: sum(v) / len(totals) for k, v in stages.items()}
    return {"warm_median_s": statistics.median(totals), "warm_max_s": max(totals), "stages_mean_s": per_stage,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--photos", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cold = cold_start(Path(tmp), args.texture_size)
        hot = warm(Path(tmp), args.texture_size, args.photos)
    print(f"texture {args.texture_size}², {os.cpu_count()} CPU cores, {len(PHOTOS[:args.photos])} photos")
    print(f"cold: ready {cold['ready_s']:.2f} s, first bundle {cold['first_bundle_s']:.2f} s")
    print(f"warm photo → bundle: median {hot['warm_median_s']:.2f} s, max {hot['warm_max_s']:.2f} s")
    for stage, seconds in hot["stages_mean_s"].items():
        print(f"  {stage:10s} {seconds * 1000:7.0f} ms")
    print(f"peak memory (warm process): {hot['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
