"""Animation data: the ARKit name table, Live Link Face CSV, the One Euro filter and `likeness track`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import SHARED
from likeness import arkit
from likeness.errors import BadInput, BadRequest, Cancelled
from likeness.service.jobs import JOBS
from likeness.capture.smoothing import OneEuro, bridge, jitter, one_euro, step_lag
from likeness.capture.track import CSV_FILE, TRACK_FILE, TrackRequest, arkit_matrix, run_track

CLIP = SHARED / "data" / "video_dev" / "bbaf2n.mpg"


def test_the_table_has_arkits_52_names_in_every_spelling():
    assert len(set(arkit.ARKIT_52)) == 52 and arkit.BLENDSHAPE_COUNT == 61
    for name in arkit.ARKIT_52:
        for style in arkit.STYLES:
            assert arkit.canonical(arkit.spell(name, style)) == name
    assert arkit.spell("eyeBlinkLeft", "arkit") == "eyeBlink_L"
    assert arkit.spell("eyeBlinkLeft", "livelink") == "EyeBlinkLeft"
    assert arkit.spell("mouthLeft", "arkit") == "mouthLeft"  # a direction, not the subject's side
    assert arkit.canonical("eyeBlink.L") == "eyeBlinkLeft"
    assert arkit.canonical("mouthPucker") == "mouthPucker"  # ends in "r" without being a right-side shape
    assert arkit.canonical("browInnerUp_L") is None and arkit.canonical("nose") is None


def test_ict_names_map_to_arkit_with_halves_averaged(ict):
    names = ict.expression_names
    assert all(arkit.canonical(n) for n in names if not n.startswith(arkit.SPLIT))
    missing = [a for a in arkit.ARKIT_52 if not set(arkit.ict_sources(a)) <= set(names)]
    assert missing == ["tongueOut"]
    matrix = arkit_matrix(names)
    weights = np.zeros(len(names))
    weights[names.index("cheekPuff_L")], weights[names.index("eyeBlink_R")] = 1.0, 0.4
    out = dict(zip(arkit.ARKIT_52, matrix @ weights))
    assert out["cheekPuff"] == pytest.approx(0.5) and out["eyeBlinkRight"] == pytest.approx(0.4)
    assert out["tongueOut"] == 0.0 and out["eyeBlinkLeft"] == 0.0
    assert arkit.arkit_weights(dict(zip(names, weights))) == pytest.approx(out)


def test_livelink_csv_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    fps, count = 30.0, 75  # 2.5 s: long enough for the reader to find the rate in the timecodes
    shapes = [dict(zip(arkit.ARKIT_52, row)) for row in rng.uniform(0, 1, (count, 52)).tolist()]
    poses = [dict(zip(arkit.POSE_COLUMNS, row)) for row in rng.uniform(-0.5, 0.5, (count, 9)).tolist()]
    path = arkit.write_livelink_csv(tmp_path / "take.csv", [t / fps for t in range(count)], shapes, poses, fps)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and header[-1] == "RightEyeRoll"
    assert len(header) == 2 + 61
    times, columns = arkit.read_livelink_csv(path)  # the rate comes from the timecodes
    assert times == pytest.approx([t / fps for t in range(count)], abs=1e-4)
    assert arkit.timecode_rate([arkit.timecode(t / 24, 24) for t in range(50)], default=60.0) == 24.0
    assert arkit.timecode_rate([arkit.timecode(t / 24, 24) for t in range(20)], default=30.0) == 30.0  # < 1 s
    for name in arkit.ARKIT_52:
        assert columns[name] == pytest.approx([s[name] for s in shapes], abs=1e-5)
    assert columns["HeadYaw"] == pytest.approx([p["HeadYaw"] for p in poses], abs=1e-5)


def test_timecodes_and_bad_csv(tmp_path):
    assert arkit.timecode(3661.5, 60.0) == "01:01:01:30.000"
    assert arkit.parse_timecode("00:00:01:12.345", 60.0) == pytest.approx(1 + 12.345 / 60)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        arkit.read_livelink_csv(bad)


def test_one_euro_removes_jitter_and_follows_steps_quickly():
    rng = np.random.default_rng(0)
    fps = 25.0
    noisy = 0.3 + rng.normal(0, 0.03, (200, 1))
    smooth = one_euro(noisy, fps, OneEuro(min_cutoff=1.0, beta=2.0))
    assert jitter(smooth)[0] < 0.25 * jitter(noisy)[0]
    step = np.r_[np.zeros(50), np.ones(50)][:, None]
    filtered = one_euro(step, fps, OneEuro(min_cutoff=1.0, beta=2.0))[:, 0]
    assert step_lag(filtered, 50, 0.5) <= 1 and step_lag(filtered, 50, 0.9) <= 4
    assert filtered[:50] == pytest.approx(0.0) and filtered.max() <= 1.0 + 1e-9


def test_bridge_interpolates_lost_frames():
    x = np.array([[0.0], [9.0], [9.0], [3.0], [9.0]])
    valid = np.array([True, False, False, True, False])
    assert bridge(x, valid)[:, 0] == pytest.approx([0.0, 1.0, 2.0, 3.0, 3.0])


def _short_clip(tmp_path, frames: int = 10, black: tuple[int, ...] = ()) -> str:
    """The first ``frames`` frames of a GRID clip as an MJPG AVI, with black frames at ``black``."""
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not available")
    capture = cv2.VideoCapture(str(CLIP))
    path = tmp_path / "clip.avi"
    writer = None
    for t in range(frames):
        ok, bgr = capture.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, bgr.shape[1::-1])
        writer.write(np.zeros_like(bgr) if t in black else bgr)
    writer.release()
    capture.release()
    return str(path)


def test_track_writes_weights_pose_gaze_and_a_livelink_csv(engine, ict_path, tmp_path):
    video = _short_clip(tmp_path, frames=10, black=(6,))
    progress = []
    result = run_track(engine, TrackRequest(video=video, output=str(tmp_path / "out"), model=str(ict_path),
                                            head=False), report=lambda *a: progress.append(a))
    assert result["frames"] == 10 and result["lost_frames"] == 1 and result["fps"] == 25.0
    assert progress[-1][1] == 1.0 and result["warnings"]
    doc = json.loads((tmp_path / "out" / TRACK_FILE).read_text())
    assert doc["format"] == "likeness.track" and len(doc["frames"]) == 10
    assert [f["tracked"] for f in doc["frames"]] == [t != 6 for t in range(10)]
    frame = doc["frames"][6]  # lost: bridged between its neighbours
    assert len(frame["expression"]) == len(doc["expressions"]) == 53 and len(frame["arkit"]) == 52
    assert abs(frame["pose"]["yaw_deg"]) < 30 and -1.0 < frame["pose"]["translation_m"][2] < -0.2
    assert set(frame["gaze"]) == {"L", "R"} and set(doc["eyes"]) == {"L", "R"}
    times, columns = arkit.read_livelink_csv(tmp_path / "out" / CSV_FILE, 25.0)
    assert times == pytest.approx([t / 25 for t in range(10)], abs=1e-4)
    assert columns["jawOpen"] == pytest.approx([f["arkit"][arkit.ARKIT_52.index("jawOpen")] for f in doc["frames"]],
                                               abs=1e-4)


def test_track_job_is_registered_checks_params_and_cancels(engine, ict_path, tmp_path):
    with pytest.raises(BadRequest):
        JOBS["track"](engine, {"video": 3}, lambda *a: None, lambda: False)
    video = _short_clip(tmp_path, frames=3)
    with pytest.raises(Cancelled):
        JOBS["track"](engine, {"video": video, "output": str(tmp_path / "out"), "model": str(ict_path)},
                      lambda *a: None, lambda: True)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["clip.avi"]
    for bad in ({"encoder": "yes"}, {"device": "gpu"}):  # refused before anything is written
        with pytest.raises((BadRequest, BadInput)):
            JOBS["track"](engine, {"video": video, "output": str(tmp_path / "out"), "model": str(ict_path), **bad},
                          lambda *a: None, lambda: False)
    assert not (tmp_path / "out").exists()


def test_a_tracks_encoder_choice_is_the_jobs_own(ict_path, tmp_path):
    """A job that asks for no encoder gets none, whatever the engine's default, which it leaves as it was."""
    from likeness.service.pipeline import Engine

    engine = Engine(use_encoder=None)
    video = _short_clip(tmp_path, frames=3)
    JOBS["track"](engine, {"video": video, "output": str(tmp_path / "out"), "model": str(ict_path), "head": False,
                           "encoder": False}, lambda *a: None, lambda: False)
    doc = json.loads((tmp_path / "out" / TRACK_FILE).read_text())
    assert doc["evidence"] == ["landmarks", "iris_gaze"] and engine.use_encoder is None


def _tracked_ramp(ict, settings, misread: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Synthetic landmarks of a known head (identity fixed as the tracker holds it) over 20 frames: jawOpen
    ramps 0 → 0.8 while the head turns, the left eye alone closes from frame 10. ``misread``: each frame also
    carries an encoder's evidence that reads every weight as 0 (an encoder blind to the jaw and the blink).
    Returns the fitted weights (20, E), the truth and the names."""
    from likeness.model.camera import Camera
    from likeness.model.correspondence import load_table
    from likeness.capture.fit import LandmarkBasis, Observation
    from likeness.capture.gaze import IRIS_CENTRE, eyeballs
    from likeness.model.geometry import head_rotation
    from likeness.capture.track import FrameTracker

    basis = LandmarkBasis.build(ict, load_table(), settings)
    identity = np.random.default_rng(5).normal(0, 0.7, 60)
    balls = eyeballs(ict, identity)
    names = ict.expression_names
    tracker = FrameTracker(ict, basis, identity, settings)
    cam, rng = Camera(800.0, (320.0, 240.0), (640, 480)), np.random.default_rng(0)
    truth = np.zeros((20, len(names)))
    truth[:, names.index("jawOpen")] = np.linspace(0.0, 0.8, 20)
    truth[10:, names.index("eyeBlink_L")] = 0.9
    for t in range(20):
        rot, shift = head_rotation(15.0 * t / 19, 3.0, 0.0), np.array([0.01, -0.01, -0.6])
        q = np.concatenate([basis.points(identity, truth[t]),
                            np.zeros((10, 3))]) @ rot.T + shift
        for side, index in IRIS_CENTRE.items():  # irises at the eyeballs' fronts: looking straight ahead
            q[index] = rot @ (balls[side].centre + balls[side].radius * balls[side].rest) + shift
        px, depth = cam.project(q)
        extra = {"evidence": np.zeros(len(names)), "sources": ("expression_encoder",)} if misread else {}
        tracker.add(Observation(px + rng.normal(0, 0.3, px.shape), (depth - depth.mean()) * 800.0 / 0.6, cam,
                                **extra))
    return np.array([f.expression for f in tracker.fits]), truth, names


def test_frame_tracker_recovers_a_jaw_ramp_and_a_one_sided_blink(ict):
    from likeness.capture.fit import FitSettings

    fitted, truth, names = _tracked_ramp(ict, FitSettings(sliding_contour=False))  # fixed correspondence here
    jaw = fitted[:, names.index("jawOpen")]
    assert np.abs(jaw - truth[:, names.index("jawOpen")]).max() < 0.08
    assert np.corrcoef(jaw, truth[:, names.index("jawOpen")])[0, 1] > 0.98
    left, right = fitted[:, names.index("eyeBlink_L")], fitted[:, names.index("eyeBlink_R")]
    assert left[10:].min() > 0.7 and right.max() < 0.15 and left[:10].max() < 0.1  # no lag from the warm start


def test_frame_tracker_trusts_an_encoder_less_where_the_landmarks_disagree(ict):
    """An encoder that misses the jaw and the blink: with the trust gate (as photos) the tracker still follows
    the landmarks; without it (trust 0) the encoder's weight pulls both down."""
    from dataclasses import replace

    from likeness.capture.fit import FitSettings

    base = FitSettings(sliding_contour=False)
    encoded = replace(base, evidence_weight=base.encoder_weight)  # as Engine.fit_settings(True)
    gated, truth, names = _tracked_ramp(ict, encoded, misread=True)
    blind, _, _ = _tracked_ramp(ict, replace(encoded, encoder_trust=0.0), misread=True)
    jaw, blink = names.index("jawOpen"), names.index("eyeBlink_L")
    assert np.abs(gated[:, jaw] - truth[:, jaw]).max() < 0.15 and gated[10:, blink].min() > 0.6
    assert (truth[-1, jaw] - blind[-1, jaw]) > 2 * (truth[-1, jaw] - gated[-1, jaw])
    assert blind[10:, blink].mean() < gated[10:, blink].mean() - 0.1


def test_track_command_line(ict_path, tmp_path):
    import subprocess
    import sys

    def likeness(*args):
        return subprocess.run([sys.executable, "-m", "likeness", "track", *map(str, args)], check=False,
                              capture_output=True, text=True, timeout=300)

    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 64)
    proc = likeness(bad, "-o", tmp_path / "bad", "--model", ict_path)
    assert proc.returncode == 2 and "not a video" in proc.stderr and "Traceback" not in proc.stderr
    video = _short_clip(tmp_path, frames=4)
    proc = likeness(video, "-o", tmp_path / "out", "--model", ict_path, "--no-head", "--max-frames", 3)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str((tmp_path / "out").resolve()) and "Tracked 3 frames" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["livelink.csv", "track.json"]


@pytest.mark.parametrize("encoder", [False, True, None])
def test_a_face_that_appears_after_the_identity_window_is_tracked(ict_path, tmp_path, monkeypatch, encoder):
    """The identity frames are collected past the window when the face comes late, and batches of frames (the
    encoder's) cross the window and lost frames without losing or reordering any. The engine's default (None) is
    the shipped encoder where torch is installed."""
    from likeness.capture import track
    from likeness.service.pipeline import Engine

    if encoder is not False:
        pytest.importorskip("torch")
        from likeness.learned.runtime import SHIPPED
        if not SHIPPED.is_file():
            pytest.skip("no shipped expression encoder")
    monkeypatch.setattr(track, "IDENTITY_WINDOW_S", 0.4)  # 10 frames at 25 fps
    video = _short_clip(tmp_path, frames=40, black=tuple(range(20)) + (27,))
    engine = Engine(use_encoder=encoder)
    result = run_track(engine, TrackRequest(video=video, output=str(tmp_path / "out"), model=str(ict_path),
                                            head=False))
    doc = json.loads((tmp_path / "out" / TRACK_FILE).read_text())
    assert doc["evidence"] == ["landmarks", "iris_gaze"] + (["expression_encoder"] if encoder is not False else [])
    assert result["frames"] == 40 and result["lost_frames"] == 21
    assert [f["tracked"] for f in doc["frames"]] == [t >= 20 and t != 27 for t in range(40)]
    assert [f["frame"] for f in doc["frames"]] == list(range(40))
