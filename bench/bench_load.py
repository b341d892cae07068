"""Load test: many photos through ONE warm backend (``likeness serve``), and through the CLI one job at a time.

Usage: .venv/bin/python bench/bench_load.py [--photos 200] [--texture-size 512] [--cli-photos 10]

The dev photos of ../shared (and the astronaut from scikit-image) are cycled to ``--photos`` jobs of one photo
each, sent over the protocol one after the other. After each job the backend's resident memory (VmRSS from
/proc) is sampled and the bundle is checked complete (readable, every photo, texture and the preview there),
then deleted. Reported: throughput, the RSS slope over the jobs after a warm-up (flat = no leak), errors.
The CLI part runs ``likeness reconstruct`` as a fresh process per photo (cold start each time).
Results go to bench/results/load.json (git-ignored); the figures are copied into docs/reliability.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from likeness.service.bundle import read_bundle
from likeness.service.cli import astronaut_photo
from shared_paths import DEV_IMAGES, find_ict_model

WARM_UP = 10  # jobs left out of the memory slope (first-use caches, allocator growth)


def photos() -> list[Path]:
    return sorted(DEV_IMAGES.glob("*.jpg")) + [astronaut_photo()]


def rss_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def complete(bundle: Path, photo_count: int) -> bool:
    """The bundle is readable and every file it names is there."""
    try:
        manifest, arrays = read_bundle(bundle)
    except (OSError, ValueError, KeyError):
        return False
    files = [p["path"] for p in manifest["photos"]] + [t for m in manifest["materials"] for t in m["textures"].values()]
    return (len(manifest["photos"]) == photo_count and arrays["vertices"].ndim == 2
            and all((bundle / f).is_file() for f in files) and (bundle / "preview.png").is_file())


def protocol_load(tmp: Path, jobs: list[Path], size: int, model: str) -> dict:
    """All jobs through one `likeness serve` process, one after the other."""
    proc = subprocess.Popen([sys.executable, "-m", "likeness", "serve", "--log", str(tmp / "serve.log")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(proc.stdout.readline())
    records = []
    start = time.perf_counter()
    for i, photo in enumerate(jobs):
        out = tmp / f"b{i:04d}"
        job_start = time.perf_counter()
        proc.stdin.write(json.dumps({"id": str(i), "op": "reconstruct", "params": {
            "photos": [str(photo)], "output": str(out), "texture_size": size, "model": model}}) + "\n")
        proc.stdin.flush()
        while (event := json.loads(proc.stdout.readline()))["type"] not in ("result", "error"):
            pass
        records.append({"photo": photo.name, "seconds": time.perf_counter() - job_start, "rss_mb": rss_mb(ready["pid"]),
                        "ok": event["type"] == "result" and complete(out, 1),
                        "error": event.get("error", {}).get("message")})
        shutil.rmtree(out, ignore_errors=True)
    total = time.perf_counter() - start
    proc.stdin.write('{"id": "q", "op": "shutdown"}\n')
    proc.stdin.flush()
    proc.wait(timeout=60)
    rss = np.array([r["rss_mb"] for r in records])
    steady = np.arange(WARM_UP, len(rss))
    slope = float(np.polyfit(steady, rss[steady], 1)[0]) if len(steady) > 2 else float("nan")
    return {"jobs": len(records), "ok": sum(r["ok"] for r in records), "seconds": total,
            "photos_per_s": len(records) / total, "median_job_s": float(np.median([r["seconds"] for r in records])),
            "rss_first_mb": float(rss[0]), "rss_after_warm_up_mb": float(rss[min(WARM_UP, len(rss) - 1)]),
            "rss_last_mb": float(rss[-1]), "rss_max_mb": float(rss.max()), "rss_slope_mb_per_100_jobs": 100 * slope,
            "errors": [r for r in records if not r["ok"]], "records": records, "exit_code": proc.returncode}


def cli_load(tmp: Path, jobs: list[Path], size: int, model: str) -> dict:
    """Each photo as its own `likeness reconstruct` process (a cold start each time)."""
    seconds, ok = [], 0
    for i, photo in enumerate(jobs):
        out = tmp / f"c{i:04d}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "likeness", "reconstruct", str(photo), "-o", str(out),
                               "--texture-size", str(size), "--model", model], capture_output=True, text=True,
                              check=False)
        seconds.append(time.perf_counter() - start)
        ok += done.returncode == 0 and complete(out, 1)
        shutil.rmtree(out, ignore_errors=True)
    return {"jobs": len(jobs), "ok": ok, "seconds": sum(seconds), "photos_per_s": len(jobs) / sum(seconds),
            "median_job_s": float(np.median(seconds))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--texture-size", type=int, default=512)
    parser.add_argument("--cli-photos", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "load.json"))
    args = parser.parse_args()
    model = find_ict_model()
    if model is None:
        sys.exit("no ICT head model (../shared/models/ict_facekit, $LIKENESS_ICT_MODEL or installed)")
    jobs = list(islice(cycle(photos()), args.photos))
    with tempfile.TemporaryDirectory(prefix="likeness-load-") as tmp:
        served = protocol_load(Path(tmp), jobs, args.texture_size, str(model))
        cli = cli_load(Path(tmp), jobs[:args.cli_photos], args.texture_size, str(model))
    result = {"texture_size": args.texture_size, "cpu_cores": os.cpu_count(), "distinct_photos": len(photos()),
              "protocol": served, "cli": cli}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    s = served
    print(f"{args.photos} jobs of one photo, texture {args.texture_size}², {os.cpu_count()} CPU cores "
          f"({len(photos())} distinct photos cycled)")
    print(f"protocol: {s['ok']}/{s['jobs']} complete bundles in {s['seconds']:.0f} s = {s['photos_per_s']:.2f} "
          f"photos/s (median job {s['median_job_s']:.2f} s); RSS {s['rss_first_mb']:.0f} MB after job 1, "
          f"{s['rss_after_warm_up_mb']:.0f} MB after job {WARM_UP}, {s['rss_last_mb']:.0f} MB at the end "
          f"(max {s['rss_max_mb']:.0f}); slope {s['rss_slope_mb_per_100_jobs']:+.1f} MB per 100 jobs; "
          f"backend exit {s['exit_code']}")
    print(f"cli: {cli['ok']}/{cli['jobs']} complete bundles, {cli['photos_per_s']:.2f} photos/s "
          f"(median process {cli['median_job_s']:.2f} s, cold start each)")
    for error in s["errors"]:
        print(f"  failed: {error['photo']}: {error['error']}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
