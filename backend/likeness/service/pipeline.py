"""The reconstruct job: photos → landmarks → fit → textures → bundle.

:class:`Engine` holds what is expensive to load (head models, the landmark detector) so a warm backend
process reuses it across jobs. Progress goes to a ``report(stage, fraction, message)`` callback; the job
checks ``cancelled()`` between steps and stops with :class:`~likeness.errors.Cancelled`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import faults
from ..appearance.albedo import Delit, delight, match_tones
from .assemble import add_hair, add_maps, hair_masks_and_color, iris_colors
from .bundle import BundleWriter, check_output, mesh_members
from ..model.camera import Camera, model_to_camera
from ..model.correspondence import load_table
from ..errors import BadInput, Cancelled
from ..paths import encoder_env
from ..capture.blendshapes import BlendshapeScorer, find_task, to_weights
from ..capture.checks import job_warnings, photo_confidence, photo_warnings
from ..capture.fit import (BASE_EVIDENCE, FitResult, FitSettings, LandmarkBasis, Observation, PhotoFit, first_stage,
                           fit_landmarks, fixed_identity, side_pairs, trusted)
from ..capture.gaze import eyeballs, gaze_angles, gaze_weights
from ..model.geometry import head_angles, head_rotation
from ..model.headmodel import HeadModel, load_ict, resolve_model_path
from ..capture.images import Photo, check_lens, load_photo
from ..capture.landmarks import FaceLandmarks, LandmarkDetector
from ..appearance.maps import roughness_png
from ..appearance.preview import compose_preview, preview_layout
from ..capture.refine import RefineSettings
from ..capture.refine import refine as refine_fit
from ..model.regions import vertex_regions
from ..capture.segment import PersonSegmenter, Segmentation, segment_photo
from ..appearance.texture import PhotoView, bake_textures, mirror_vertices, uv_map

Report = Callable[[str, float, str], None]
#: Fraction of the job at the start of each stage.
STAGES = {"load": 0.0, "landmarks": 0.1, "fit": 0.3, "texture": 0.45, "write": 0.85}
MAX_PHOTOS = 64


@dataclass(frozen=True)
class ReconstructRequest:
    photos: list[str]
    output: str
    texture_size: int = 2048
    model: str | None = None
    name: str | None = None
    device: str = "auto"
    refine: bool = False  # refine each photo's fit against its image (likeness.capture.refine): slower
    encoder: bool | str | None = None  # the learned expression encoder (True/"learned"), "smirk", None: the engine's
    lens_mm: float | None = None  # the lens (mm, full-frame equivalent) of photos without EXIF; None: 50 mm
    occlusion: bool = False  # divide the head's own ambient occlusion out of the albedo (likeness.appearance.occlusion)


@dataclass
class Engine:
    """Warm state shared by jobs in one backend process."""

    settings: FitSettings = field(default_factory=FitSettings)
    refine_settings: RefineSettings = field(default_factory=RefineSettings)
    _models: dict = field(default_factory=dict)
    use_blendshapes: bool = True
    #: the learned expression encoder: True / "learned", False, "smirk", or None: the product default (on where
    #: torch and the weights are installed; docs/encoder.md); ``$LIKENESS_EXPRESSION_ENCODER``
    use_encoder: bool | str | None = field(default_factory=lambda: encoder_wanted())
    device: str = "auto"  # where the expression encoder runs: auto, cpu, cuda, mps
    _detector: LandmarkDetector | None = None
    _scorer: BlendshapeScorer | None | bool = None  # False: looked, not installed
    _encoder: tuple | None = None  # (key, likeness.learned.runtime.ExpressionEncoder or None): the last one loaded
    use_segmentation: bool = True  # only skin pixels reach the skin albedo; hair becomes a mask and a colour
    _segmenter: PersonSegmenter | None = None

    def model(self, path: str | None) -> tuple[HeadModel, LandmarkBasis]:
        resolved = resolve_model_path(path)
        key = str(resolved)
        if key not in self._models:
            model = load_ict(resolved)
            self._models = {key: (model, LandmarkBasis.build(model, load_table(), self.settings))}
        return self._models[key]

    def detector(self) -> LandmarkDetector:
        if self._detector is None:
            self._detector = LandmarkDetector()
        return self._detector

    def scorer(self) -> BlendshapeScorer | None:
        """MediaPipe's blendshape model when installed and enabled (``use_blendshapes``), else None."""
        if self._scorer is None and self.use_blendshapes:
            task = find_task()
            self._scorer = BlendshapeScorer(task) if task else False
        return self._scorer or None

    def segment(self, photo: Photo, landmarks: FaceLandmarks) -> Segmentation | None:
        """The photo's skin/hair/clothing/background labels (:mod:`likeness.capture.segment`); None when turned off
        or when the photo cannot be labelled (too little of the face inside it): its pixels then all count, as
        before."""
        if not self.use_segmentation:
            return None
        if self._segmenter is None:
            self._segmenter = PersonSegmenter()
        try:
            return segment_photo(photo.rgb, landmarks.points_px, self._segmenter)
        except ValueError:
            return None

    def encoder(self, model: HeadModel):
        """The learned expression encoder (:mod:`likeness.learned`) for ``model`` when enabled (``use_encoder``),
        its weights exist and torch is installed, else None. A broken checkpoint or an unusable device raises
        :class:`BadInput` (and is asked again next time)."""
        if self.use_encoder is False or self.use_encoder == "smirk":
            return None
        from ..learned.runtime import ExpressionEncoder, find_weights, torch_available

        path = find_weights()
        key = (str(path), self.device, model.expression_names)
        if self._encoder is None or self._encoder[0] != key:
            usable = path is not None and torch_available()
            self._encoder = (key, ExpressionEncoder(path, model.expression_names, self.device, task=find_task())
                             if usable else None)
        return self._encoder[1]

    def observe(self, model: HeadModel, cameras: list[Camera], found: list[FaceLandmarks],
                scores: list[dict[str, float] | None], images: list[np.ndarray]) -> list[Observation]:
        """What each photo (or video frame) tells the fit: its landmarks, and as expression evidence the
        encoder's weights (it reads the face's pixels in ``images``, the landmarks and MediaPipe's scores) where
        there is an encoder, else MediaPipe's scores."""
        encoder = self.encoder(model)  # one batch for all photos
        learned: list[np.ndarray | None] = [None if s is None else to_weights(s, model.expression_names)
                                            for s in scores]
        sources = [("mediapipe_blendshapes",) if s is not None else () for s in scores]
        rotations: list[np.ndarray | None] = [None] * len(found)
        scored = list(learned)  # MediaPipe's scores as weights, kept beside the encoder's for the identity stage
        if encoder is not None and found:
            from ..learned.features import score_vector

            inputs = [encoder.inputs(rgb, lm.points_px, lm.depth_px, score_vector(s))
                      for rgb, lm, s in zip(images, found, scores)]
            weights, angles = encoder.predict(np.stack([f for f, _ in inputs]), np.stack([c for _, c in inputs]))
            learned = list(weights)
            rotations = [head_rotation(*a) for a in angles]
            sources = [("expression_encoder",) + src for src in sources]
        if self.use_encoder == "smirk" and found:  # SMIRK's reading through the FLAME bridge (.flame_job)
            from .flame_job import smirk_evidence

            learned, sources = smirk_evidence(self, model, images, found), [("smirk",)] * len(found)
        return [Observation(lm.points_px, lm.depth_px, cam, ev, sources=src, rotation_prior=rot,
                            scores_evidence=mp if "expression_encoder" in src else None)
                for cam, lm, ev, src, rot, mp in zip(cameras, found, learned, sources, rotations, scored)]

    def fit_settings(self, encoded: bool) -> FitSettings:
        """The fit's settings when the evidence comes from the encoder (``encoded``: it weighs ``encoder_weight``)
        or not."""
        if encoded:
            return replace(self.settings, evidence_weight=self.settings.encoder_weight)
        return self.settings

    def fit(self, basis: LandmarkBasis, observations: list[Observation], settings: FitSettings) -> FitResult:
        """The landmark fit. With the encoder's evidence it runs twice: the identity is fitted with the encoder
        weighing only ``identity_encoder_weight`` (a face the encoder misreads must not bend the identity), then
        held while pose and expression are fitted with the encoder at full weight."""
        if not any("expression_encoder" in o.sources for o in observations):
            return fit_landmarks(basis, observations, settings)
        first = fit_landmarks(basis, *first_stage(observations, settings))
        if settings.encoder_trust > 0:
            pairs = side_pairs(basis.names)
            observations = [trusted(o, p.expression, settings.encoder_trust, pairs, settings.encoder_side_trust)
                            if "expression_encoder" in o.sources else o for o, p in zip(observations, first.photos)]
        second = fit_landmarks(fixed_identity(basis, first.identity), observations, settings, first.photos)
        return FitResult(first.identity, second.photos, first.iterations + second.iterations)

    def analyse(self, photos: list[Photo], model_path: str | None = None,
                step: Report = lambda *a: None, refine: bool = False,
                on_landmarks: Callable[[list[FaceLandmarks]], None] | None = None
                ) -> tuple[FitResult, list[FaceLandmarks]]:
        """Landmarks and the fit for photos of one person, without textures or files.

        This is the measurable core of :meth:`reconstruct` (benchmarks and trackers call it directly).
        ``step(stage, fraction within the stage, message)`` reports progress. ``refine`` adds the refinement
        against the photos' edges (:mod:`likeness.capture.refine`) after the landmark fit. ``on_landmarks(found)`` is
        called once every photo's landmarks are found, before the fit (to start work that needs only them).
        """
        model, basis = self.model(model_path)
        found: list[FaceLandmarks] = []
        scores: list[dict[str, float] | None] = []
        for i, photo in enumerate(photos):
            step("landmarks", i / len(photos), f"Finding face landmarks ({i + 1}/{len(photos)})")
            lm = self.detector().detect(photo.rgb, photo.path.name)
            scores.append(self.scorer().scores(photo.rgb, lm.box_px) if self.scorer() else None)
            found.append(lm)
        if on_landmarks is not None:
            on_landmarks(found)
        observations = self.observe(model, [Camera(p.focal_px, p.principal_point, p.size) for p in photos], found,
                                    scores, [p.rgb for p in photos])
        step("fit", 0.0, "Fitting the head to the landmarks")
        settings = self.fit_settings(any("expression_encoder" in o.sources for o in observations))
        result = self.fit(basis, observations, settings)
        if refine:
            step("fit", 0.5, "Refining the fit against the photos")
            result = refine_fit(model, basis, observations, [p.rgb for p in photos], result, settings,
                                self.refine_settings)
        # the eyeballs are known now: the gaze seen in the irises (with the learned scores, where there are
        # any) sets the eyeLook* weights, which the fit holds fixed as evidence-only shapes
        balls = eyeballs(model, result.identity)
        only = np.isin(model.expression_names, self.settings.evidence_only)
        for obs, fit in zip(observations, result.photos):
            fit.gaze = gaze_angles(obs.points_px, obs.camera, fit.rotation, fit.translation, balls)
            share = settings.encoder_gaze_share if "expression_encoder" in obs.sources else 0.5
            evidence = _combine(obs.evidence, gaze_weights(fit.gaze, model.expression_names), share)
            fit.expression[only] = np.clip(np.nan_to_num(evidence[only]), 0.0, 1.0)
            edges = ("photo_edges",) if "photo_edges" in fit.evidence else ()  # set by the refinement
            fit.evidence = BASE_EVIDENCE + obs.sources + edges
        return result, found

    def reconstruct(self, request: ReconstructRequest, report: Report = lambda *a: None,
                    cancelled: Callable[[], bool] = lambda: False) -> dict:
        """Run one job; returns ``{"bundle": path, "warnings": [...]}``."""
        _validate(request)
        if request.model == "flame":  # FLAME topology from SMIRK's reading (likeness.service.flame_job)
            from .flame_job import reconstruct_flame

            if request.encoder != "smirk":
                raise BadInput("--model flame needs --encoder smirk (FLAME's parameters come from SMIRK).",
                               "Add --encoder smirk, or leave out --model flame for the ICT head.")
            return reconstruct_flame(self, request, report, cancelled)
        with self.job_encoder(request.encoder, request.device):
            return self._reconstruct(request, report, cancelled)

    @contextmanager
    def job_encoder(self, encoder: bool | str | None, device: str):
        """For one job: the encoder it asks for (None: the engine's setting) on its device (checked by the caller,
        :func:`check_device`; the encoder is reloaded when the device changes)."""
        self.device = device
        default = self.use_encoder
        self.use_encoder = default if encoder is None else encoder
        try:
            yield
        finally:
            self.use_encoder = default

    def _reconstruct(self, request: ReconstructRequest, report: Report, cancelled: Callable[[], bool]) -> dict:
        def step(stage: str, within: float, message: str) -> None:
            if cancelled():
                raise Cancelled()
            stages = list(STAGES)
            nxt = STAGES[stages[stages.index(stage) + 1]] if stage != stages[-1] else 1.0
            report(stage, STAGES[stage] + within * (nxt - STAGES[stage]), message)
            faults.check(stage)  # a slow stage (tests) pauses after saying it started, so Cancel can land in it
            if cancelled():
                raise Cancelled()

        output = check_output(request.output)
        n = len(request.photos)
        step("load", 0.0, "Loading the head model")
        model, basis = self.model(request.model)
        # the UV rasterisations and roughness maps of this texture size load (from the disk cache, or are made)
        # in the background while the landmarks and the fit run: most of a cold start otherwise
        prepared = _PREPARE.submit(prepare_textures, model, request.texture_size)
        photos: list[Photo] = []
        for i, path in enumerate(request.photos):
            step("load", (i + 1) / (n + 1), f"Reading {Path(path).name}")
            photos.append(load_photo(path, request.lens_mm))

        segmenting: list = []

        def segment_during_fit(landmarks: list[FaceLandmarks]) -> None:  # the labels need only the landmarks
            segmenting.append(_BACKGROUND.submit(lambda: [self.segment(p, lm) for p, lm in zip(photos, landmarks)]))

        result, found = self.analyse(photos, request.model, step, request.refine, on_landmarks=segment_during_fit)
        cameras = [Camera(p.focal_px, p.principal_point, p.size) for p in photos]
        identity = result.identity
        neutral = model.vertices(identity)

        with BundleWriter(output) as writer:
            photo_files = [writer.add_image(f"photos/photo_{k:02d}.jpg", photo.rgb) for k, photo in enumerate(photos)]
            step("texture", 0.0, "Finding skin and hair, estimating the light and projecting the photos onto the head")
            segments = segmenting[0].result()
            prepared.result()
            writer.add_mesh(model, neutral)  # the photos and the mesh are written while the textures are made
            views: list[PhotoView] = []
            delit: list[Delit] = []
            for photo, cam, fit, seg in zip(photos, cameras, result.photos, segments):
                verts = neutral + np.tensordot(fit.expression, model.expression_basis, axes=1)
                view = PhotoView.build(model, photo.rgb, cam, verts @ fit.rotation.T + fit.translation)
                view = replace(view, skin=None if seg is None else seg.skin)
                delit.append(delight(model, view, fit.rotation, occlusion=request.occlusion))
                views.append(view)
            delit = match_tones(delit)  # several photos: one skin tone, each cast moved into its light
            views = [replace(view, rgb=lit.albedo_rgb) for view, lit in zip(views, delit)]
            # the hair masks and the preview's layout are made beside the colour textures (whose threads leave a
            # core idle part of the time)
            hair_job = _BACKGROUND.submit(hair_masks_and_color, model, views, segments, request.texture_size)
            records, extra = [], job_warnings(basis, self.settings, photos, found, cameras)
            for k, (photo, view, fit, lm, lit) in enumerate(zip(photos, views, result.photos, found, delit)):
                record = _photo_record(model, photo, view, fit, lm, identity)
                record["light"] = {"sh": np.round(lit.light_head, 5).tolist(), "frame": "head",
                                   "skin_albedo": np.round(lit.skin_albedo, 5).tolist(),
                                   "occlusion": lit.occlusion}
                record["warnings"] += extra[k]
                record["path"] = photo_files[k]
                record["fit"].update(iterations=result.iterations, landmarks_used=len(basis.base))
                records.append(record)
            layout = _BACKGROUND.submit(preview_layout, photos[0].rgb, model, views[0].vertices_cam, views[0].raster,
                                        np.array(records[0]["landmarks_68_px"]), views[0].normals)
            texture_files: dict[int, dict[str, str]] = {}
            textures = bake_textures(model, views, request.texture_size,  # each material's files encode at once
                                     lambda i, texture: texture_files.update({i: add_maps(writer, model, i, texture)}))
            hair = add_hair(writer, model, *hair_job.result(), texture_files)
            step("write", 0.0, "Writing the bundle")
            writer.add_image("preview.png", lambda: compose_preview(layout.result(), model, textures))
            if cancelled():
                raise Cancelled()
            warnings = [w for record in records for w in record["warnings"]]
            path = writer.finish(model=model, job_name=request.name or photos[0].path.stem, vertices=neutral,
                                 identity=identity, photos=records, texture_files=texture_files,
                                 warnings=warnings, base_colors=iris_colors(model, photos, found, delit),
                                 extra={"hair": hair} if hair else None)
        report("write", 1.0, "Done")
        return {"bundle": str(path), "warnings": warnings}


_PREPARE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="likeness-prepare")
#: A job's work that overlaps its main thread: the photos' segmentation during the fit, the hair masks and the
#: preview's layout during the bake.
_BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="likeness-background")


def prepare_textures(model: HeadModel, size: int) -> None:
    """Load (or make) what every job at this texture size reuses: UV rasterisations, roughness maps, the mirror
    vertices, the face regions and the mesh file's model arrays."""
    mirror_vertices(model)
    mesh_members(model)
    vertex_regions(model)
    projected = [i for i, spec in enumerate(model.materials) if spec.projected]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the first run ever rasterises: both materials at once
        list(pool.map(lambda material: (uv_map(model, material, size), roughness_png(model, material, size)),
                      projected))


def _photo_record(model: HeadModel, photo: Photo, view: PhotoView, fit: PhotoFit, lm: FaceLandmarks,
                  identity: np.ndarray) -> dict:
    """The manifest entry of one photo (docs/bundle.md), without its ``path`` in the bundle."""
    cam = view.camera
    lm68, _ = cam.project(view.vertices_cam[model.landmarks_68])
    yaw, pitch, roll = head_angles(fit.rotation)
    return {
        "path": None,
        "source_path": str(photo.path),
        "image_size": list(photo.size),
        "camera": {"focal_px": round(cam.focal_px, 4), "principal_point_px": list(cam.principal_point),
                   "focal_source": photo.focal_source},
        "pose": {"yaw_deg": round(yaw, 4), "pitch_deg": round(pitch, 4), "roll_deg": round(roll, 4),
                 "model_to_camera": np.round(model_to_camera(fit.rotation, fit.translation), 7).tolist()},
        "expression": {name: round(float(w), 5) for name, w in zip(model.expression_names, fit.expression)},
        "identity": [round(float(v), 6) for v in identity],
        "landmarks_68_px": np.round(lm68, 3).tolist(),
        "fit": {"landmark_rmse_px": round(fit.rmse_px, 4), "landmark_rmse_iod": round(fit.rmse_iod, 5),
                "confidence": round(photo_confidence(fit, lm), 3), "evidence": list(fit.evidence)},
        "gaze": {side: {"yaw_deg": round(y, 3), "pitch_deg": round(p, 3)} for side, (y, p) in (fit.gaze or {}).items()},
        "face_box_px": [round(v, 2) for v in lm.box_px],
        "warnings": photo_warnings(photo.path.name, fit, lm),
    }


def encoder_wanted() -> bool | None:
    """The engine's encoder setting from ``$LIKENESS_EXPRESSION_ENCODER``: True (``on`` or a checkpoint's path),
    False (``off``), or None when unset: the product default, on where torch is installed (docs/encoder.md)."""
    value = encoder_env()
    return None if value is None else value is not False


def _combine(first: np.ndarray | None, second: np.ndarray, share: float = 0.5) -> np.ndarray:
    """``share`` × first + (1 − share) × second where both have a value, else whichever has one (NaN = none)."""
    if first is None:
        return second
    both = ~np.isnan(first) & ~np.isnan(second)
    mixed = share * np.nan_to_num(first) + (1.0 - share) * np.nan_to_num(second)
    return np.where(both, mixed, np.where(np.isnan(first), second, first))


def check_device(device: str) -> None:
    """A job's ``device`` is one the encoder knows, else :class:`BadInput`."""
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise BadInput(f"Unknown device {device!r}.", "Use auto, cpu, cuda or mps.")


def _validate(request: ReconstructRequest) -> None:
    if not request.photos:
        raise BadInput("No photos were given.", "Pick one or more photos of the same person.")
    if len(request.photos) > MAX_PHOTOS:
        raise BadInput(f"{len(request.photos)} photos were given; at most {MAX_PHOTOS} fit in one job.",
                       "Pick fewer photos.")
    check_device(request.device)
    check_lens(request.lens_mm)
    if not (64 <= int(request.texture_size) <= 8192):
        raise BadInput(f"Texture size {request.texture_size} is out of range.", "Use a size from 64 to 8192.")
