"""The track job: a video of one face → per-frame expression weights, head pose and gaze (docs/animation.md).

1. Frames are read with OpenCV; MediaPipe Face Mesh runs in video mode (tracking from frame to frame).
2. The identity is fitted once, by :meth:`Engine.analyse` (the reconstruct fit), from up to
   :data:`IDENTITY_FRAMES` frames spread over the first :data:`IDENTITY_WINDOW_S` seconds.
3. Every frame then fits only pose and expression (:func:`~likeness.capture.fit.fit_landmarks` with the identity baked
   into the landmark basis), warm-started from the previous frame with :data:`WARM_ITERATIONS` Gauss–Newton
   steps; the irises give the gaze and the eyeLook* weights as in a photo fit.
4. Frames without a face are marked lost and bridged by linear interpolation; then a One Euro filter removes
   the jitter (:mod:`likeness.capture.smoothing`).

Units: angles in degrees (head pose as in docs/bundle.md, gaze as in :mod:`likeness.capture.gaze`), translation in
metres in the camera frame, weights in [0, 1].
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from .. import arkit
from ..service.bundle import check_output
from ..model.camera import Camera
from ..errors import BadInput, Cancelled, NoFaceFound
from .fit import (BASE_EVIDENCE, FitSettings, LandmarkBasis, Observation, PhotoFit, first_stage, fit_landmarks,
                  fixed_identity, side_pairs, trusted)
from .gaze import eyeballs, gaze_angles, gaze_weights
from ..model.geometry import head_angles, head_rotation
from ..model.headmodel import HeadModel
from .images import DEFAULT_FOCAL_FACTOR, Photo
from .landmarks import FaceLandmarks, LandmarkDetector
from ..service.pipeline import Engine, ReconstructRequest, Report, _combine, check_device
from .smoothing import OneEuro, bridge, one_euro

IDENTITY_FRAMES = 6
IDENTITY_WINDOW_S = 3.0
WARM_ITERATIONS = 3
ENCODER_BATCH = 16  # frames whose expression the encoder reads in one call
#: One Euro parameters per channel group (see docs/animation.md for how they were chosen).
SMOOTHING = {"expression": OneEuro(min_cutoff=1.0, beta=2.0), "angles": OneEuro(min_cutoff=0.8, beta=0.05),
             "translation": OneEuro(min_cutoff=0.8, beta=5.0), "gaze": OneEuro(min_cutoff=1.5, beta=0.05)}
Step = Callable[[float, str], None]


@dataclass
class Track:
    """Per-frame results of one video: T frames, E expressions; lost frames have ``valid`` False."""

    fps: float
    size: tuple[int, int]  # (width, height) px
    camera: Camera
    identity: np.ndarray  # (K,)
    names: tuple[str, ...]  # (E,) expression names of the head model
    valid: np.ndarray  # (T,) bool: a face was tracked in this frame
    expression: np.ndarray  # (T,E) in [0, 1]
    angles: np.ndarray  # (T,3) yaw, pitch, roll in degrees (docs/bundle.md)
    translation: np.ndarray  # (T,3) metres, camera frame
    gaze: np.ndarray  # (T,4) left yaw, left pitch, right yaw, right pitch in degrees
    evidence: tuple[str, ...] = ()  # what read the frames, as a bundle's fit.evidence

    def smoothed(self) -> Track:
        """Lost frames bridged, then each group filtered by :data:`SMOOTHING`; weights clipped to [0, 1]."""
        def clean(x: np.ndarray, group: str) -> np.ndarray:
            return one_euro(bridge(x, self.valid), self.fps, SMOOTHING[group])
        return replace(self, expression=np.clip(clean(self.expression, "expression"), 0.0, 1.0),
                       angles=clean(self.angles, "angles"), translation=clean(self.translation, "translation"),
                       gaze=clean(self.gaze, "gaze"))

    def model_to_camera(self, t: int) -> np.ndarray:
        """4×4 head frame → camera frame transform of frame ``t`` (from the angles and translation)."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = head_rotation(*self.angles[t]), self.translation[t]
        return m


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, float, int, tuple[int, int]]:
    """OpenCV capture, frame rate (Hz; 25 when the file does not say), frame count (0 if unknown), (w, h)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"The video {path} does not exist.", "Check the path and try again.")
    capture = cv2.VideoCapture(str(path))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    if not capture.isOpened() or min(size) <= 0:
        capture.release()
        raise BadInput(f"{path.name} is not a video OpenCV can read.", "Use an MP4, MOV, AVI or MPEG file.")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return capture, fps if 1.0 <= fps <= 1000.0 else 25.0, max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0), size


def read_frames(capture: cv2.VideoCapture, limit: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames (H,W,3) uint8 in order, at most ``limit``."""
    n = 0
    while limit is None or n < limit:
        ok, bgr = capture.read()
        if not ok:
            return
        n += 1
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class FrameTracker:
    """Fits frames one after the other with the identity held fixed, warm-starting from the previous frame.

    With the expression encoder's evidence (and ``settings.encoder_trust`` > 0) each frame is fitted twice, as a
    photo is: first as the photo's identity stage reads it (:func:`~.fit.first_stage`), then with the encoder's
    weights pulled towards that first reading where the two disagree (:func:`~.fit.trusted`)."""

    def __init__(self, model: HeadModel, basis: LandmarkBasis, identity: np.ndarray, settings: FitSettings) -> None:
        self.identity = identity
        self.basis = fixed_identity(basis, identity)
        self.names = model.expression_names
        self.balls = eyeballs(model, identity)
        self.only = np.isin(self.names, settings.evidence_only)
        self.warm = replace(settings, iterations=WARM_ITERATIONS, pose_only_iterations=0)
        self.cold = settings
        self.trust = settings.encoder_trust
        self.pairs = side_pairs(self.names)
        self.previous: PhotoFit | None = None
        self.previous_plain: PhotoFit | None = None  # the last frame's first (encoder-less) fit
        self.fits: list[PhotoFit | None] = []
        self.sources: dict[str, None] = {}  # the frames' evidence sources, in the order first seen

    def add(self, obs: Observation | None) -> None:
        """Fit one frame's observation; None marks a frame where the face was lost."""
        if obs is None:
            self.previous = self.previous_plain = None  # the face may come back elsewhere: start cold
            self.fits.append(None)
            return
        self.sources.update(dict.fromkeys(obs.sources))
        if self.trust > 0 and "expression_encoder" in obs.sources:
            start = [self.previous_plain] if self.previous_plain is not None else None
            plain = fit_landmarks(self.basis, *first_stage([obs], self.warm if start else self.cold), start).photos[0]
            self.previous_plain = plain
            obs = trusted(obs, plain.expression, self.trust, self.pairs, self.cold.encoder_side_trust)
        start = [self.previous] if self.previous is not None else None
        fit = fit_landmarks(self.basis, [obs], self.warm if start else self.cold, start).photos[0]
        fit.gaze = gaze_angles(obs.points_px, obs.camera, fit.rotation, fit.translation, self.balls)
        share = self.cold.encoder_gaze_share if "expression_encoder" in obs.sources else 0.5
        evidence = _combine(obs.evidence, gaze_weights(fit.gaze, self.names), share)
        fit.expression[self.only] = np.clip(np.nan_to_num(evidence[self.only]), 0.0, 1.0)
        self.previous = fit
        self.fits.append(fit)


Detection = tuple[FaceLandmarks | None, dict | None, np.ndarray]


def _detect(detector: LandmarkDetector, scorer, rgb: np.ndarray) -> Detection:
    """The frame's landmarks (and MediaPipe's scores when ``scorer`` is given; None, None when no face is
    found), and the frame."""
    try:
        lm = detector.detect(rgb)
    except NoFaceFound:
        return None, None, rgb
    return lm, scorer.scores(rgb, lm.box_px) if scorer is not None else None, rgb


def _observe(engine: Engine, model: HeadModel, camera: Camera, frames: list[Detection]) -> list[Observation | None]:
    """Observations of a batch of frames (the expression encoder runs once for the batch); None where the face
    was lost."""
    seen = [i for i, (lm, _, _) in enumerate(frames) if lm is not None]
    obs = engine.observe(model, [camera] * len(seen), [frames[i][0] for i in seen], [frames[i][1] for i in seen],
                         [frames[i][2] for i in seen])
    out: list[Observation | None] = [None] * len(frames)
    for i, o in zip(seen, obs):
        out[i] = o
    return out


def track_video(engine: Engine, video: str | Path, model_path: str | None = None, blendshapes: bool = False,
                max_frames: int | None = None, step: Step = lambda f, m: None,
                cancelled: Callable[[], bool] = lambda: False) -> tuple[Track, list[Photo]]:
    """Track every frame of ``video`` (raw, not smoothed); also returns the frames the identity was fitted on.

    ``blendshapes`` adds MediaPipe's learned scores as evidence when that model is installed (slower).
    ``step(fraction, message)`` reports progress; ``cancelled()`` is checked every frame.
    """
    model, basis = engine.model(model_path)
    capture, fps, count, size = open_video(video)
    count = min(count, max_frames) if max_frames and count else (count or max_frames or 0)
    camera = Camera(DEFAULT_FOCAL_FACTOR * max(size), (size[0] / 2.0, size[1] / 2.0), size)
    scorer = engine.scorer() if blendshapes else None
    window = max(1, min(count or 10 ** 9, round(IDENTITY_WINDOW_S * fps)))
    stride = max(1, window // IDENTITY_FRAMES)
    detector = LandmarkDetector(max_faces=1, video=True)
    pending: list[Observation | None] = []
    samples: list[Photo] = []
    tracker: FrameTracker | None = None
    batch: list[Detection] = []
    seen = 0  # frames whose observation went to the tracker or the pending list

    def flush() -> None:
        nonlocal tracker, pending, seen
        for obs in _observe(engine, model, camera, batch):
            seen += 1
            if tracker is not None:
                tracker.add(obs)
            else:
                pending.append(obs)
                if seen >= window and samples:
                    tracker = _start(engine, model, basis, model_path, samples, pending)
                    pending = []
        batch.clear()

    try:
        for t, rgb in enumerate(read_frames(capture, count or None)):
            if cancelled():
                raise Cancelled()
            if t % 10 == 0:
                step(t / count if count else 0.0, f"Tracking frame {t + 1}" + (f"/{count}" if count else ""))
            batch.append(_detect(detector, scorer, rgb))
            if batch[-1][0] is not None and t % stride == 0 and len(samples) < IDENTITY_FRAMES and (
                    t < window or not samples):  # past the window: the first frame with a face starts it
                samples.append(Photo(Path(f"frame_{t:06d}.png"), rgb, camera.focal_px, "default"))
            if len(batch) == ENCODER_BATCH:
                flush()
        flush()
        if tracker is None and samples:
            tracker = _start(engine, model, basis, model_path, samples, pending)
    finally:
        detector.close()
        capture.release()
    if tracker is None:
        raise NoFaceFound(f"No face was found in {Path(video).name}.",
                          "Use a video where the face is visible and at least about 100 pixels wide.")
    return _collect(tracker, fps, size, camera), samples


def _start(engine: Engine, model: HeadModel, basis: LandmarkBasis, model_path: str | None, samples: list[Photo],
           pending: list[Observation | None]) -> FrameTracker:
    """Fit the identity on the sampled frames, then the frames buffered meanwhile."""
    result, _ = engine.analyse(samples, model_path)
    tracker = FrameTracker(model, basis, result.identity, engine.fit_settings(engine.encoder(model) is not None))
    for obs in pending:
        tracker.add(obs)
    return tracker


def _collect(tracker: FrameTracker, fps: float, size: tuple[int, int], camera: Camera) -> Track:
    """Stack the per-frame fits into arrays (lost frames hold zeros and ``valid`` False)."""
    fits = tracker.fits
    e = len(tracker.names)
    valid = np.array([f is not None for f in fits], bool)
    zero = PhotoFit(np.eye(3), np.zeros(3), np.zeros(e), gaze={"L": (0.0, 0.0), "R": (0.0, 0.0)})
    fits = [f if f is not None else zero for f in fits]
    return Track(fps=fps, size=size, camera=camera, identity=tracker.identity,
                 names=tracker.names, valid=valid, expression=np.array([f.expression for f in fits]),
                 angles=np.array([head_angles(f.rotation) for f in fits]),
                 translation=np.array([f.translation for f in fits]),
                 gaze=np.array([[*f.gaze["L"], *f.gaze["R"]] for f in fits]),
                 evidence=BASE_EVIDENCE + tuple(tracker.sources))


# The job: a track folder ---------------------------------------------------------------------------------

TRACK_FORMAT = "likeness.track"
TRACK_VERSION = 1
TRACK_FILE = "track.json"
CSV_FILE = "livelink.csv"
HEAD_DIR = "head"
#: Fraction of the job at the start of each stage.
STAGES = {"track": 0.0, "head": 0.8, "write": 0.95}


@dataclass(frozen=True)
class TrackRequest:
    """A ``track`` job: ``video`` → the folder ``output`` (must not exist), see docs/animation.md."""

    video: str
    output: str
    model: str | None = None
    head: bool = True  # also reconstruct a textured head bundle (``output/head``) from the identity frames
    texture_size: int = 1024
    smooth: bool = True
    blendshapes: bool = False
    max_frames: int | None = None
    name: str | None = None
    #: the expression encoder: True / "learned" (ours), "smirk", False, or None: the engine's setting (by default
    #: ours where torch is installed; docs/encoder.md, "Status")
    encoder: bool | str | None = None
    device: str = "auto"  # where the encoder runs: auto, cpu, cuda or mps


def arkit_matrix(names: tuple[str, ...]) -> np.ndarray:
    """(52, E) matrix taking ICT-named weights (E,) to ARKit's 52 (:data:`likeness.arkit.ARKIT_52` order):
    split halves averaged, shapes the model lacks (tongueOut) 0."""
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(arkit.ARKIT_52), len(names)))
    for j, name in enumerate(arkit.ARKIT_52):
        sources = [index[s] for s in arkit.ict_sources(name) if s in index]
        out[j, sources] = 1.0 / len(arkit.ict_sources(name))
    return out


def run_track(engine: Engine, request: TrackRequest, report: Report = lambda *a: None,
              cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Run a track job; writes the folder atomically and returns a summary (``{"track": path, ...}``)."""
    output = check_output(request.output)
    check_device(request.device)
    with engine.job_encoder(request.encoder, request.device):
        return _run_track(engine, request, output, report, cancelled)


def _run_track(engine: Engine, request: TrackRequest, output: Path, report: Report,
               cancelled: Callable[[], bool]) -> dict:
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        raw, samples = track_video(engine, request.video, request.model, request.blendshapes, request.max_frames,
                                   lambda f, m: report("track", STAGES["head"] * f, m), cancelled)
        track = raw.smoothed() if request.smooth else replace(
            raw, **{k: bridge(getattr(raw, k), raw.valid) for k in ("expression", "angles", "translation", "gaze")})
        if request.head:
            report("head", STAGES["head"], "Building the head from the identity frames")
            photos = []
            for photo in samples:
                photos.append(str(tmp / photo.path.name))
                cv2.imwrite(photos[-1], cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2BGR))
            engine.reconstruct(ReconstructRequest(photos=photos, output=str(tmp / HEAD_DIR),
                                                  texture_size=request.texture_size, model=request.model,
                                                  name=request.name or Path(request.video).stem,
                                                  device=engine.device, encoder=engine.use_encoder),
                               cancelled=cancelled)
            for path in photos:
                Path(path).unlink()
        report("write", STAGES["write"], "Writing the track")
        _write(tmp, request, track, engine.model(request.model)[0])
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lost = int((~raw.valid).sum())
    warnings = [f"The face was lost in {lost} of {len(raw.valid)} frames; they were bridged."] if lost else []
    report("write", 1.0, "Done")
    return {"track": str(output), "frames": len(raw.valid), "lost_frames": lost, "fps": raw.fps,
            "head_bundle": str(output / HEAD_DIR) if request.head else None, "warnings": warnings}


def _write(folder: Path, request: TrackRequest, track: Track, model: HeadModel) -> None:
    """``track.json`` and ``livelink.csv`` of a (smoothed) track into ``folder``."""
    weights = track.expression @ arkit_matrix(track.names).T  # (T,52)
    times = np.arange(len(track.valid)) / track.fps
    balls = eyeballs(model, track.identity)
    angles, gaze = np.round(track.angles, 3).tolist(), np.round(track.gaze, 3).tolist()
    frames = [{"frame": t, "time_s": round(float(times[t]), 5), "tracked": bool(track.valid[t]),
               "expression": np.round(track.expression[t], 4).tolist(), "arkit": np.round(weights[t], 4).tolist(),
               "pose": {**dict(zip(("yaw_deg", "pitch_deg", "roll_deg"), angles[t])),
                        "translation_m": np.round(track.translation[t], 5).tolist(),
                        "model_to_camera": np.round(track.model_to_camera(t), 6).tolist()},
               "gaze": {"L": dict(zip(("yaw_deg", "pitch_deg"), gaze[t][:2])),
                        "R": dict(zip(("yaw_deg", "pitch_deg"), gaze[t][2:]))}}
              for t in range(len(times))]
    document = {
        "format": TRACK_FORMAT, "version": TRACK_VERSION,
        "video": {"path": str(Path(request.video).resolve()), "fps": track.fps, "frame_count": len(times),
                  "size": list(track.size)},
        "camera": {"focal_px": round(track.camera.focal_px, 4),
                   "principal_point_px": list(track.camera.principal_point)},
        "head_model": model.name, "identity": np.round(track.identity, 6).tolist(),
        "eyes": {side: {"centre_m": np.round(ball.centre, 6).tolist(), "radius_m": round(ball.radius, 6)}
                 for side, ball in balls.items()},
        "expressions": list(track.names), "arkit_names": list(arkit.ARKIT_52),
        "evidence": list(track.evidence),
        "smoothing": {"filter": "one_euro" if request.smooth else "none",
                      **({k: vars(p) for k, p in SMOOTHING.items()} if request.smooth else {})},
        "head_bundle": HEAD_DIR if request.head else None, "livelink_csv": CSV_FILE,
        "frames": frames,
    }
    (folder / TRACK_FILE).write_text(json.dumps(document, separators=(",", ":")))
    radians = np.radians(np.concatenate([track.angles, track.gaze[:, :2], np.zeros((len(times), 1)),
                                         track.gaze[:, 2:], np.zeros((len(times), 1))], axis=1))
    arkit.write_livelink_csv(folder / CSV_FILE, times.tolist(),
                             [dict(zip(arkit.ARKIT_52, row)) for row in weights.tolist()],
                             [dict(zip(arkit.POSE_COLUMNS, row)) for row in radians.tolist()], fps=track.fps)
