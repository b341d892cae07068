"""Video stability (docs/quality.md, section 3): frame-to-frame jitter of the per-frame fit on GRID clips.

Usage: .venv/bin/python bench/quality/video.py [--frames N] [--no-blendshapes]
Decodes each clip in ../shared/data/video_dev (25 fps, 75 frames, 360×288), fits every frame alone (as the
fit runs now: no temporal smoothing), prints the tables and writes bench/results/video.json
(video_no_blendshapes.json without MediaPipe's blendshape evidence; an ``_encoder`` suffix where the expression
encoder read the frames, which the photo fit does by default since 5 December 2026: section 3's figures are
``LIKENESS_EXPRESSION_ENCODER=off``). About 2 minutes on 2 CPU cores.

Jitter is the mean absolute second difference over frames, |x[t+1] − 2 x[t] + x[t−1]|: it is zero for
constant and for steadily moving values, so it measures frame-to-frame shake more than real motion (speech still
adds some). MediaPipe's own blendshape scores and raw landmarks are measured the same way, as a reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from likeness.capture.landmarks import EYE_OUTER
from photo_fits import SHARED, Fitter, MediaPipeScores, frame_photo, table, write_results

VIDEOS = SHARED / "data" / "video_dev"
SMILE = ("mouthSmile_L", "mouthSmile_R")
MP_SMILE = ("mouthSmileLeft", "mouthSmileRight")


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """The clip's frames as RGB arrays (H,W,3) uint8."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def jitter(x: np.ndarray) -> np.ndarray:
    """Mean absolute second difference over frames (axis 0), per remaining column."""
    return np.abs(x[2:] - 2 * x[1:-1] + x[:-2]).mean(0)


def track_clip(fitter: Fitter, scorer: MediaPipeScores, frames: list[np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Per-frame series: fit expression, pose, identity, projected landmarks, MediaPipe landmarks and scores, times."""
    fits = [fitter.fit(frame_photo(rgb, f"{name}_{t:02d}")) for t, rgb in enumerate(frames)]
    scores = [scorer.scores(rgb) for rgb in frames]
    mp_names = sorted(n for n in scores[0] if n != "_neutral")
    return {"expression": np.array([f.expression for f in fits]), "angles": np.array([f.angles for f in fits]),
            "translation": np.array([f.translation for f in fits]), "identity": np.array([f.identity for f in fits]),
            "landmarks_68": np.array([f.landmarks_68_px for f in fits]),
            "mediapipe_px": np.array([f.mediapipe_px for f in fits]),
            "mp_scores": np.array([[s.get(n, np.nan) for n in mp_names] for s in scores]), "mp_names": mp_names,
            "landmark_s": np.array([f.landmark_s for f in fits]), "fit_s": np.array([f.fit_s for f in fits])}


def clip_metrics(series: dict, names: tuple[str, ...], face_basis: np.ndarray) -> dict:
    """Jitter of weights, pose, landmarks and identity for one clip's series (see the module docstring)."""
    expr, mp = series["expression"], series["mp_scores"]
    smile = expr[:, [names.index(n) for n in SMILE]].mean(1)
    mp_smile = mp[:, [series["mp_names"].index(n) for n in MP_SMILE]].mean(1)
    jaw, mp_jaw = expr[:, names.index("jawOpen")], mp[:, series["mp_names"].index("jawOpen")]
    per_shape = jitter(expr)
    iod = np.linalg.norm(series["mediapipe_px"][:, EYE_OUTER[0]] - series["mediapipe_px"][:, EYE_OUTER[1]],
                         axis=-1).mean()
    # identity → neutral face region (T,V,3) in mm: spread of each vertex over the frames, RMS over vertices
    face = 1000 * np.tensordot(series["identity"], face_basis, axes=1)
    yaw, pitch, roll = jitter(series["angles"])
    return {
        "frames": len(expr),
        "expression_all": float(per_shape.mean()), "jawOpen": float(jitter(jaw)), "mouthSmile": float(jitter(smile)),
        "worst_shapes": {names[i]: float(per_shape[i]) for i in np.argsort(-per_shape)[:6]},
        "mp_all": float(np.nanmean(jitter(mp))), "mp_jawOpen": float(jitter(mp_jaw)),
        "mp_mouthSmile": float(jitter(mp_smile)),
        "jawOpen_std": float(jaw.std()), "mp_jawOpen_std": float(mp_jaw.std()),
        "jawOpen_corr_mp": float(np.corrcoef(jaw, mp_jaw)[0, 1]) if jaw.std() > 0 else float("nan"),
        "yaw_deg": float(yaw), "pitch_deg": float(pitch), "roll_deg": float(roll),
        "translation_xy_mm": float(1000 * jitter(series["translation"][:, :2]).mean()),
        "translation_z_mm": float(1000 * jitter(series["translation"][:, 2])),
        "landmarks_68_iod": float((jitter(series["landmarks_68"]).mean()) / iod),
        "mediapipe_iod": float((jitter(series["mediapipe_px"]).mean()) / iod),
        "identity_coeff_std": float(series["identity"].std(0).mean()),
        "identity_face_std_mm": float(np.sqrt(face.var(0).sum(-1).mean())),
        "identity_coeff_jitter": float(jitter(series["identity"]).mean()),
        "iod_px": float(iod),
        "mediapipe_ms": float(1000 * series["landmark_s"].mean()), "fit_ms": float(1000 * series["fit_s"].mean()),
        "fit_ms_p90": float(1000 * np.percentile(series["fit_s"], 90)),
    }


def report(per_clip: dict[str, dict], mean: dict) -> None:
    """Print the tables."""
    rows = {**per_clip, "mean": mean}
    print("\nExpression jitter (mean |2nd difference| per frame, weight units) — fit vs MediaPipe's scores")
    print(table([[c, m["expression_all"], m["mp_all"], m["jawOpen"], m["mp_jawOpen"], m["mouthSmile"],
                  m["mp_mouthSmile"], m["jawOpen_std"], m["mp_jawOpen_std"], m["jawOpen_corr_mp"]]
                 for c, m in rows.items()],
                ["clip", "all", "MP all", "jawOpen", "MP jawOpen", "smile", "MP smile", "jawOpen std",
                 "MP jawOpen std", "corr"]))
    print("\nPose, landmark and identity jitter")
    print(table([[c, m["yaw_deg"], m["pitch_deg"], m["roll_deg"], m["translation_xy_mm"], m["translation_z_mm"],
                  m["landmarks_68_iod"], m["mediapipe_iod"], m["identity_coeff_std"], m["identity_face_std_mm"]]
                 for c, m in rows.items()],
                ["clip", "yaw °", "pitch °", "roll °", "xy mm", "depth mm", "lm68/IOD", "MP lm/IOD",
                 "identity std", "face std mm"]))
    print("\nShapes that shake most (jitter)")
    for c, m in per_clip.items():
        print(f"  {c}: " + ", ".join(f"{n} {v:.3f}" for n, v in m["worst_shapes"].items()))
    print(f"\nTime per frame: MediaPipe {mean['mediapipe_ms']:.0f} ms, fit {mean['fit_ms']:.0f} ms mean "
          f"(p90 {mean['fit_ms_p90']:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames of each clip")
    parser.add_argument("--no-blendshapes", action="store_true",
                        help="fit without MediaPipe's blendshape scores as expression evidence")
    args = parser.parse_args()
    fitter, scorer = Fitter(blendshapes=not args.no_blendshapes), MediaPipeScores()
    model = fitter.model
    names = model.expression_names
    clips = sorted(VIDEOS.glob("*.mpg"))
    fitter.fit(frame_photo(read_frames(clips[0], 1)[0], "warm-up"))
    face_basis = model.identity_basis[:fitter.engine.settings.identity_count, :model.face_vertex_count]
    per_clip = {clip.stem: clip_metrics(track_clip(fitter, scorer, read_frames(clip, args.frames), clip.stem),
                                        names, face_basis) for clip in clips}
    keys = [k for k, v in next(iter(per_clip.values())).items() if isinstance(v, float)]
    mean = {k: float(np.mean([m[k] for m in per_clip.values()])) for k in keys}
    report(per_clip, mean)
    path = write_results("video" + ("_no_blendshapes" if args.no_blendshapes else "")
                         + ("_encoder" if fitter.engine.encoder(fitter.model) is not None else ""),
                         {"definition": "jitter = mean |x[t+1] - 2x[t] + x[t-1]| over frames",
                          "clips": per_clip, "mean": mean}, fitter.settings())
    print(f"\nWrote {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    main()
