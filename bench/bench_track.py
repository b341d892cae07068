"""Video tracking (`likeness track`): speed, jitter before/after smoothing, and the smoother's lag.

Usage: .venv/bin/python bench/bench_track.py [--blendshapes] [--frames N]
       LIKENESS_EXPRESSION_ENCODER=off .venv/bin/python bench/bench_track.py  # without the expression encoder
       [--trust T]: FitSettings.encoder_trust for the run (0: the encoder unchecked by the landmarks)
Reads the GRID clips in ../shared/data/video_dev (360×288, 25 fps) and the ICT model. Prints tables and writes
bench/results/track.json; docs/animation.md quotes the figures with the machine they were measured on.

- Speed: frames per second of MediaPipe Face Mesh alone (video mode) and of the whole per-frame tracker
  (MediaPipe + fixed-identity fit + gaze), after the identity fit (timed on its own).
- Jitter: mean |x[t+1] − 2 x[t] + x[t−1]| of the weights (all 53, jawOpen) and of the head angles, raw per-frame
  fits vs after the One Euro filter.
- Lag: frames until a unit step in a weight reaches 50 % and 90 % through the expression filter, with and without
  tracking-like noise, beside a fixed low-pass filter at the One Euro minimum cut-off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `likeness` sets it for the CLI and the server

import numpy as np
from likeness.model.camera import Camera
from likeness.capture.images import DEFAULT_FOCAL_FACTOR, Photo
from likeness.capture.landmarks import LandmarkDetector
from likeness.service.pipeline import Engine
from likeness.capture.smoothing import OneEuro, jitter, one_euro, step_lag
from likeness.capture.track import (
    ENCODER_BATCH,
    IDENTITY_FRAMES,
    SMOOTHING,
    FrameTracker,
    _collect,
    _detect,
    _observe,
    open_video,
    read_frames,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLIPS = sorted((SHARED / "data" / "video_dev").glob("*.mpg"))


def model_path() -> str:
    return os.environ.get("LIKENESS_ICT_MODEL") or str(SHARED / "models" / "ict_facekit" / "ict_face_model.npz")


def track_clip(engine: Engine, clip: Path, blendshapes: bool, limit: int | None) -> dict:
    """Time MediaPipe and the tracker on one clip (frames decoded beforehand); jitter raw vs smoothed."""
    capture, fps, _, size = open_video(clip)
    frames = list(read_frames(capture, limit))
    capture.release()
    model, basis = engine.model(model_path())
    camera = Camera(DEFAULT_FOCAL_FACTOR * max(size), (size[0] / 2, size[1] / 2), size)
    scorer = engine.scorer() if blendshapes else None

    detector = LandmarkDetector(max_faces=1, video=True)
    start = time.perf_counter()
    found = [_detect(detector, None, rgb) for rgb in frames]
    mediapipe_s = time.perf_counter() - start
    detector.close()
    scorer_s = 0.0
    if scorer is not None:
        start = time.perf_counter()
        found = [(lm, None if lm is None else scorer.scores(rgb, lm.box_px), rgb) for lm, _, rgb in found]
        scorer_s = time.perf_counter() - start
    engine.encoder(model)  # loaded outside the timing
    start = time.perf_counter()
    observations = [o for k in range(0, len(found), ENCODER_BATCH)
                    for o in _observe(engine, model, camera, found[k:k + ENCODER_BATCH])]
    encoder_s = time.perf_counter() - start

    stride = max(1, min(len(frames), round(3 * fps)) // IDENTITY_FRAMES)
    samples = [Photo(Path(f"f{t}.png"), frames[t], camera.focal_px, "default")
               for t in range(0, len(frames), stride) if observations[t] is not None][:IDENTITY_FRAMES]
    start = time.perf_counter()
    result, _ = engine.analyse(samples, model_path())
    identity_s = time.perf_counter() - start
    tracker = FrameTracker(model, basis, result.identity, engine.fit_settings(engine.encoder(model) is not None))
    start = time.perf_counter()
    for obs in observations:
        tracker.add(obs)
    fit_s = time.perf_counter() - start
    raw = _collect(tracker, fps, size, camera)
    smooth = raw.smoothed()
    jaw = raw.names.index("jawOpen")
    blink = [raw.names.index("eyeBlink_L"), raw.names.index("eyeBlink_R")]
    n = len(frames)
    per_frame = (mediapipe_s + scorer_s + encoder_s + fit_s) / n
    return {
        "frames": n, "lost": int((~raw.valid).sum()),
        "mediapipe_fps": n / mediapipe_s, "scorer_ms": 1000 * scorer_s / n, "fit_ms": 1000 * fit_s / n,
        "encoder_ms": 1000 * encoder_s / n, "encoder": engine.encoder(model) is not None,
        "tracker_fps": 1.0 / per_frame, "identity_s": identity_s,
        "jitter_raw": {"expression": float(jitter(raw.expression).mean()),
                       "jawOpen": float(jitter(raw.expression[:, jaw])),
                       "angles_deg": jitter(raw.angles).tolist(),
                       "translation_mm": (1000 * jitter(raw.translation)).tolist()},
        "jitter_smoothed": {"expression": float(jitter(smooth.expression).mean()),
                            "jawOpen": float(jitter(smooth.expression[:, jaw])),
                            "angles_deg": jitter(smooth.angles).tolist(),
                            "translation_mm": (1000 * jitter(smooth.translation)).tolist()},
        "jawOpen_range": [float(raw.expression[:, jaw].min()), float(raw.expression[:, jaw].max())],
        # the clip's strongest blink (either eye) and its median frame: a blink must still read as one
        "eyeBlink_peak": float(raw.expression[:, blink].max()),
        "eyeBlink_median": float(np.median(raw.expression[:, blink].max(1))),
        "jawOpen_peak_kept": float(smooth.expression[:, jaw].max() / max(raw.expression[:, jaw].max(), 1e-9)),
    }


def lag(fps: float = 25.0) -> dict:
    """Step response of the expression filter (frames to 50 % / 90 %), clean and with noise (σ = 0.03)."""
    step = np.r_[np.zeros(50), np.ones(50)][:, None]
    noise = np.random.default_rng(0).normal(0, 0.03, step.shape)
    params = SMOOTHING["expression"]
    fixed = OneEuro(params.min_cutoff, 0.0, params.d_cutoff)
    out = {}
    for name, p in (("one_euro", params), ("fixed_low_pass", fixed)):
        clean = one_euro(step, fps, p)[:, 0]
        noisy = one_euro(step + noise, fps, p)[:, 0]
        out[name] = {"frames_to_50": step_lag(clean, 50, 0.5), "frames_to_90": step_lag(clean, 50, 0.9),
                     "noisy_frames_to_50": step_lag(noisy, 50, 0.5),
                     "still_jitter_ratio": float(jitter(noisy[:50, None])[0] / jitter(noise[:50])[0])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blendshapes", action="store_true", help="add MediaPipe's learned scores per frame")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames of each clip")
    parser.add_argument("--trust", type=float, default=None,
                        help="FitSettings.encoder_trust for this run (0: the encoder's evidence as it is); "
                             "results in track[...]_trust-T.json")
    args = parser.parse_args()
    engine = Engine(use_blendshapes=args.blendshapes)
    if args.trust is not None:
        engine.settings = replace(engine.settings, encoder_trust=args.trust)
    engine.model(model_path())
    track_clip(engine, CLIPS[0], args.blendshapes, 10)  # warm-up: imports, graphs, caches
    clips = {clip.stem: track_clip(engine, clip, args.blendshapes, args.frames) for clip in CLIPS}
    keys = ("mediapipe_fps", "scorer_ms", "encoder_ms", "fit_ms", "tracker_fps", "identity_s")
    mean = {k: float(np.mean([c[k] for c in clips.values()])) for k in keys}
    print(f"{'clip':16s} {'frames':>6s} {'MP fps':>7s} {'enc ms':>6s} {'fit ms':>7s} {'track fps':>9s} {'id s':>5s} "
          f"{'expr raw→smooth':>17s} {'jaw raw→smooth':>16s} {'yaw° raw→smooth':>16s} {'pitch°':>14s} "
          f"{'jaw max':>7s} {'blink max/med':>13s}")
    for name, c in clips.items():
        r, s = c["jitter_raw"], c["jitter_smoothed"]
        print(f"{name:16s} {c['frames']:6d} {c['mediapipe_fps']:7.1f} {c['encoder_ms']:6.2f} {c['fit_ms']:7.1f} "
              f"{c['tracker_fps']:9.1f} "
              f"{c['identity_s']:5.2f} {r['expression']:8.4f}→{s['expression']:.4f} {r['jawOpen']:7.4f}→"
              f"{s['jawOpen']:.4f} {r['angles_deg'][0]:7.3f}→{s['angles_deg'][0]:.3f} "
              f"{r['angles_deg'][1]:6.3f}→{s['angles_deg'][1]:.3f} {c['jawOpen_range'][1]:7.2f} "
              f"{c['eyeBlink_peak']:6.2f}/{c['eyeBlink_median']:.2f}")
    steps = lag()
    for name, v in steps.items():
        print(f"lag {name}: {v}")
    suffix = ("_blendshapes" if args.blendshapes else "") + ("_encoder" if engine.encoder(engine.model(model_path())[0])
                                                             else "") + (
        "" if args.trust is None else f"_trust-{args.trust:g}")
    out = REPO / "bench" / "results" / f"track{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
                               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "blendshapes": args.blendshapes,
                               "clips": clips, "mean": mean, "lag": steps}, indent=1))
    print(f"mean: {mean}\nWrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
