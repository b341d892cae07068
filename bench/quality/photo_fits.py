"""Shared by the real-data quality benchmarks (dev photos, video): paths, one-photo fits, MediaPipe's own
blendshape scores, result files.

Every photo or frame is fitted alone (``Engine.analyse([photo])``), as for a user with one photo.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from likeness.model.camera import Camera
from likeness.model.geometry import head_angles
from likeness.capture.fit import FitSettings
from likeness.capture.images import DEFAULT_FOCAL_FACTOR, Photo
from likeness.service.pipeline import Engine

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results"
FACE_LANDMARKER = SHARED / "models" / "mediapipe_face_landmarker" / "face_landmarker.task"


def model_path() -> str:
    """The ICT model: ``$LIKENESS_ICT_MODEL``, else the copy in ../shared."""
    return os.environ.get("LIKENESS_ICT_MODEL") or str(SHARED / "models" / "ict_facekit" / "ict_face_model.npz")


@dataclass(frozen=True)
class SingleFit:
    """What the benchmarks read from the fit of one photo."""

    expression: np.ndarray  # (E,) weights in [0, 1]
    identity: np.ndarray  # (K,)
    angles: np.ndarray  # (3,) yaw, pitch, roll in degrees
    translation: np.ndarray  # (3,) metres
    landmarks_68_px: np.ndarray  # (68,2) the model's iBUG-68 vertices projected, as in the bundle
    mediapipe_px: np.ndarray  # (478,2) MediaPipe's raw landmarks
    rmse_iod: float
    landmark_s: float  # MediaPipe time
    fit_s: float  # fit time after MediaPipe


class Fitter:
    """A warm :class:`Engine` fitting one photo at a time.

    With ``blendshapes`` the engine may use MediaPipe's blendshape scores as expression evidence: the copy in
    ../shared unless ``$LIKENESS_MEDIAPIPE_TASK`` names another.
    """

    def __init__(self, blendshapes: bool = True, path: str | None = None, refine: bool = False,
                 fit: dict[str, float] | None = None) -> None:
        self.path = path or model_path()
        self.refine = refine  # also run the refinement against the photo (likeness.capture.refine)
        if blendshapes:
            os.environ.setdefault("LIKENESS_MEDIAPIPE_TASK", str(FACE_LANDMARKER))
        self.engine = Engine(use_blendshapes=blendshapes)
        if fit:  # before the model loads: its landmark basis is built with the settings (identity_count)
            self.engine.settings = dataclasses.replace(self.engine.settings, **fit)
        self.model, _ = self.engine.model(self.path)

    def fit(self, photo: Photo) -> SingleFit:
        marks: dict[str, float] = {}
        start = time.perf_counter()
        result, found = self.engine.analyse([photo], self.path,
                                            step=lambda stage, *_: marks.setdefault(stage, time.perf_counter()),
                                            refine=self.refine)
        end = time.perf_counter()
        fit = result.photos[0]
        ids = self.model.landmarks_68
        k = len(result.identity)
        verts = (self.model.neutral[ids].astype(np.float64)
                 + np.tensordot(result.identity, self.model.identity_basis[:k, ids], axes=1)
                 + np.tensordot(fit.expression, self.model.expression_basis[:, ids], axes=1))
        lm68, _ = Camera(photo.focal_px, photo.principal_point, photo.size).project(
            verts @ fit.rotation.T + fit.translation)
        return SingleFit(expression=fit.expression.copy(), identity=result.identity.copy(),
                         angles=np.array(head_angles(fit.rotation)), translation=fit.translation.copy(),
                         landmarks_68_px=lm68, mediapipe_px=found[0].points_px, rmse_iod=fit.rmse_iod,
                         landmark_s=marks["fit"] - start, fit_s=end - marks["fit"])

    def settings(self) -> dict:
        """The fit settings, and whether MediaPipe's blendshape scores fed the fit."""
        return {**dataclasses.asdict(self.engine.settings), "blendshape_evidence": self.engine.scorer() is not None}


class MediaPipeScores:
    """MediaPipe Face Landmarker's 52 ARKit blendshape scores of a whole image (reference, not the product)."""

    def __init__(self, task: Path = FACE_LANDMARKER) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(task)), running_mode=vision.RunningMode.IMAGE,
            num_faces=1, output_face_blendshapes=True)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def scores(self, rgb: np.ndarray) -> dict[str, float]:
        """ARKit name → score; empty when no face is found."""
        import mediapipe as mp

        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        return {c.category_name: float(c.score) for c in (result.face_blendshapes or [[]])[0]}


def fit_settings(pairs: list[str]) -> dict[str, float]:
    """``FIELD=VALUE`` pairs → fit settings to replace; an unknown field or a value that is not a number exits."""
    fields = {f.name: f for f in dataclasses.fields(FitSettings)}
    out: dict[str, float] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields or fields[key].type not in ("float", "int"):
            raise SystemExit(f"--fit {pair}: not a numeric FitSettings field")
        try:
            out[key] = int(value) if fields[key].type == "int" else float(value)
        except ValueError:
            raise SystemExit(f"--fit {pair}: {value!r} is not a number") from None
    return out


def fit_suffix(fit: dict[str, float]) -> str:
    """The results file's suffix for fit settings (:func:`fit_settings`): "" or "_fit_FIELD-VALUE_..."."""
    return "_fit_" + "_".join(f"{k}-{v:g}" for k, v in fit.items()) if fit else ""


def frame_photo(rgb: np.ndarray, name: str) -> Photo:
    """A video frame as a photo without EXIF (the documented default focal length), like ``load_photo``."""
    return Photo(path=Path(name), rgb=rgb, focal_px=DEFAULT_FOCAL_FACTOR * max(rgb.shape[:2]), focal_source="default")


def write_results(name: str, data: dict, settings: dict) -> Path:
    """``bench/results/<name>.json`` with the code version and machine next to the figures."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "backend"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip())
    meta = {"commit": commit, "backend_modified": dirty, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
            "fit": settings}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, **data}, indent=1, default=_plain))
    return path


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


def table(rows: list[list], header: list[str]) -> str:
    """A plain-text table (floats with 3 significant digits)."""
    cells = [header] + [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells)
