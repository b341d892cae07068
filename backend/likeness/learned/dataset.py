"""Training data for the expression encoder: render scenes, run MediaPipe on them, keep what it saw with the truth.

Each shard of :data:`SHARD` samples is one ``.npz`` (no pickle) in the data folder, made by one worker process
from its own seed stream, so a folder can be filled in parallel, stopped and resumed, and the same seed always
makes the same data. A sample holds MediaPipe's 478 landmarks and depth (pixels), its 52 blendshape scores
(:func:`likeness.learned.features.score_vector`), the face crop (:func:`likeness.learned.features.face_crop`,
uint8), and the truth: 53 expression weights, yaw/pitch/roll, the
head rotation, the camera; and ``found`` = 0 where MediaPipe saw no face (those are left out of training).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .features import FACE_POINTS, LANDMARKS, landmarks_3d

SHARD = 250
#: What the renders look like: 1, the first training set (faint brows, no creases); 2, dense brows, lash lines
#: and expression creases on most skins (:meth:`likeness.learned.skins.SkinPainter.crease`); 3, version 2 with
#: photo-like eyes (lash lines, dark irises), ambient occlusion, studio lights and plain backdrops on some scenes;
#: 4, version 3 with the white sclera of versions 1–2 and the eyeballs shaded with a third of the occlusion;
#: 5, version 4 with a reconstructed photo's albedo on half of the faces (:mod:`likeness.learned.photoskin`);
#: 6, version 5's scene plan and skins shaded by Cycles (:mod:`likeness.learned.cycles`; needs bpy), drawn from
#: their own seed (:data:`CYCLES_SEED`) so they add scenes to version 5's rather than repeat them.
#: Part of every shard's file name, so a cache of one version is never mistaken for another.
VERSION = 2
#: The seed of version 6's scenes (the others draw from the training set's own, trainset.DATA_SEED).
CYCLES_SEED = 7300
#: Every version a cache can hold (the commands' ``--data-version`` choices).
VERSIONS = (1, 2, 3, 4, 5, 6)
#: The first version whose skins take a photo's albedo (they need :func:`likeness.learned.photoskin.photo_bundle`).
PHOTO_SKINS = 5
#: The first version shaded by Cycles.
CYCLES = 6
FIELDS = ("points_px", "depth_px", "scores", "expression", "angles", "rotation", "focal_px", "image_size",
          "found", "crop")


@dataclass(frozen=True)
class Look:
    """How one data version's renders are made (:data:`VERSION` says what each version added)."""

    studio: bool  # some scenes with studio lights and plain backdrops (draw_scene's ``photo``)
    detail: bool  # dense brows, lash lines (SkinPainter.paint's ``detail``)
    creases: bool  # expression creases on 70 % of the faces (SkinPainter.crease)
    eyes: int  # SkinPainter.paint's ``eyes``: 0 the first eyes, 1 photo-like, 2 photo-like with a white sclera
    occlusion: bool  # ambient occlusion in the shading (HeadRenderer.render)
    eye_occlusion: float  # the share of the occlusion the eyeballs take
    photo_skin: bool  # half of the faces dressed with a photo's albedo (needs a photo bundle)
    cycles: bool = False  # shaded by Cycles (likeness.learned.cycles) instead of the rasteriser


def look(version: int) -> Look:
    """The render settings of data ``version`` (one of :data:`VERSIONS`)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown training-data version {version}; known: {VERSIONS}")
    return Look(studio=version >= 3, detail=version >= 2, creases=version >= 2,
                eyes=0 if version < 3 else 1 if version == 3 else 2, occlusion=version >= 3,
                eye_occlusion=1.0 if version == 3 else 0.3, photo_skin=version >= PHOTO_SKINS,
                cycles=version >= CYCLES)


def shard_path(folder: Path, family: str, index: int, version: int = VERSION) -> Path:
    name = f"{family}_{index:04d}.npz" if version == 1 else f"{family}_v{version}_{index:04d}.npz"
    return folder / name


def draw_sample(model, centre: np.ndarray, skins, settings: Look, seed: int, index: int, i: int):
    """Sample ``i`` of shard ``index``: its random stream (the scene's draws taken; the skin and the render draw
    from it next), its :class:`~likeness.learned.scenes.TrainingScene` and the head's vertices (V,3, head frame, m)
    with the eyes turned to the scene's gaze. The same for the renders and for :func:`true_landmarks`."""
    from ..capture.gaze import eye_turns, turn_eyes
    from .scenes import draw_scene

    rng = np.random.default_rng([seed, index, i])
    scene = draw_scene(model.expression_names, 60, centre, skins, rng, photo=settings.studio)
    verts = turn_eyes(model, model.vertices(scene.identity, scene.expression),
                      eye_turns(dict(zip(model.expression_names, scene.expression))))
    return rng, scene, verts


def true_points_px(table, verts: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                   camera) -> tuple[np.ndarray, np.ndarray]:
    """The correspondence ``table``'s 468 points on the head ``verts`` (V,3, head frame, m) posed by ``rotation``
    and ``translation`` (head frame → camera frame) and seen by ``camera``, as a perfect MediaPipe would report
    them: pixels (468, 2) (x right, y down) and depth (468,) relative to the face's mean distance (away from the
    camera, in the same pixel scale)."""
    px, distance = camera.project(table.points(verts) @ rotation.T + translation)
    return px, (distance - distance.mean()) * camera.focal_px / distance.mean()


def face_points(table, verts: np.ndarray, rotation: np.ndarray, translation: np.ndarray, camera) -> np.ndarray:
    """:func:`true_points_px` as :func:`likeness.learned.features.landmarks_3d` gives MediaPipe's points: (468, 3),
    pixels, x right, y up, z toward the camera."""
    return landmarks_3d(*true_points_px(table, verts, rotation, translation, camera))


def true_landmarks(model_path: str, folder: Path, family: str, index: int, seed: int, skin_count: int,
                   version: int = VERSION) -> np.ndarray:
    """Where MediaPipe's 468 face landmarks truly lie in shard ``index``'s renders: the correspondence table's
    points on each scene's true mesh (what the fit would see from a perfect detector), (SHARD, 468, 3) as
    :func:`likeness.learned.features.landmarks_3d` gives them (pixels, x right, y up, z toward the camera, depth
    relative to the face's mean distance in the same pixel scale as MediaPipe's). The scenes are drawn again from
    the shard's seeds (no rendering); kept beside the shard as ``truth_<shard name>``."""
    from ..model.correspondence import load_table
    from ..model.headmodel import load_ict
    from .skins import skin_seeds

    path = Path(folder) / f"truth_{shard_path(Path(folder), family, index, version).name}"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return f["points"]
    model, table = load_ict(model_path), load_table()
    centre, skins, settings = model.neutral[model.landmarks_68].mean(0), skin_seeds(skin_count, family), look(version)
    out = np.zeros((SHARD, FACE_POINTS, 3), np.float32)
    for i in range(SHARD):
        _, scene, verts = draw_sample(model, centre, skins, settings, seed, index, i)
        out[i] = face_points(table, verts, scene.rotation, scene.translation, scene.camera)
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(tmp, points=out)
    tmp.replace(path)
    return out


def make_shard(model_path: str, task_path: str | None, folder: str, family: str, index: int, seed: int,
               skin_count: int, version: int = VERSION, photo_bundle: str | None = None,
               render_device: str = "cpu") -> str:
    """Render and detect one shard; returns its path. Runs in a worker process (one MediaPipe per process).
    ``photo_bundle``: the bundle whose albedo dresses half of the faces from version :data:`PHOTO_SKINS` on;
    ``render_device``: where Cycles renders (:data:`likeness.learned.cycles.RENDER_DEVICES`; Cycles versions only)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ..capture.blendshapes import BlendshapeScorer
    from ..model.correspondence import load_table
    from ..errors import NoFaceFound
    from ..model.headmodel import load_ict
    from ..capture.landmarks import LandmarkDetector
    from .features import CROP, crop_template, face_crop, score_vector
    from .photoskin import vertex_albedo
    from .render import HeadRenderer
    from .skins import SkinPainter, skin_seeds

    model = load_ict(model_path)
    settings = look(version)
    painter = SkinPainter(model)
    if settings.cycles:
        from .cycles import CyclesHeadRenderer

        draw = CyclesHeadRenderer(model, device=render_device).render
    else:
        draw = partial(HeadRenderer(model).render, occlusion=settings.occlusion,
                       eye_occlusion=settings.eye_occlusion)
    detector = LandmarkDetector(max_faces=1)
    scorer = BlendshapeScorer(Path(task_path)) if task_path else None
    skins = skin_seeds(skin_count, family)
    centre = model.neutral[model.landmarks_68].mean(0)
    template = crop_template(load_table().points(model.neutral.astype(np.float64)))
    photo = None
    if settings.photo_skin:
        if photo_bundle is None:
            raise ValueError(f"data version {version} needs a photo bundle (likeness.learned.photoskin)")
        photo = vertex_albedo(photo_bundle, model.vertex_count)
    rows: dict[str, list] = {k: [] for k in FIELDS}
    for i in range(SHARD):
        rng, scene, verts = draw_sample(model, centre, skins, settings, seed, index, i)
        skin = painter.paint(scene.skin_seed, family, detail=settings.detail, eyes=settings.eyes, photo=photo)
        if settings.creases and rng.random() < 0.7:
            rest = model.vertices(scene.identity, np.zeros(len(model.expression_names)))
            skin = painter.crease(skin, rest, verts, float(rng.uniform(0.2, 0.7)), rng)
        rgb = draw(verts, skin, scene.rotation, scene.translation, scene.camera, scene.light, rng, scene.occluder,
                   plain=scene.plain)
        try:
            found = detector.detect(rgb)
            points, depth = found.points_px[:LANDMARKS], found.depth_px[:LANDMARKS]
            scores = score_vector(scorer.scores(rgb, found.box_px) if scorer else None)
            crop, ok = face_crop(rgb, points, template), 1
        except NoFaceFound:
            points, depth, scores, ok = np.zeros((LANDMARKS, 2)), np.zeros(LANDMARKS), score_vector(None), 0
            crop = np.zeros((CROP, CROP, 3), np.uint8)
        for key, value in (("points_px", points), ("depth_px", depth), ("scores", scores),
                           ("expression", scene.expression), ("angles", scene.angles),
                           ("rotation", scene.rotation), ("focal_px", scene.camera.focal_px),
                           ("image_size", scene.camera.size), ("found", ok), ("crop", crop)):
            rows[key].append(value)
    path = shard_path(Path(folder), family, index, version)
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(tmp, **{k: np.asarray(v, np.uint8 if k == "crop" else np.float32) for k, v in rows.items()})
    tmp.replace(path)
    return str(path)


def fill(folder: Path, model_path: str, task_path: str | None, family: str, shards: int, seed: int,
         skin_count: int, workers: int = 2, log=print, version: int = VERSION,
         photo_bundle: str | None = None, render_device: str = "cpu") -> list[Path]:
    """Make the shards ``0 … shards−1`` of ``family`` that ``folder`` lacks; returns all their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(shards) if not shard_path(folder, family, i, version).is_file()]
    if todo:
        log(f"rendering {len(todo)} shard(s) of {SHARD} {family} samples into {folder} with {workers} worker(s)")
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(make_shard, model_path, task_path, str(folder), family, i, seed, skin_count,
                                   version, photo_bundle, render_device)
                       for i in todo]
            for done, future in enumerate(futures, 1):
                log(f"  {future.result()} ({done}/{len(todo)})")
    return [shard_path(folder, family, i, version) for i in range(shards)]


def load(paths: list[Path]) -> dict[str, np.ndarray]:
    """Concatenate shards into arrays by field."""
    parts = [np.load(p, allow_pickle=False) for p in paths]
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
