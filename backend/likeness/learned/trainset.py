"""The encoder's training set (:mod:`likeness.learned.train`, :mod:`likeness.learned.pack`): the render cache filled
where it lacks shards (:mod:`likeness.learned.dataset`), read, and turned into features against the training faces'
landmark template. Scenes come from :data:`DATA_SEED` with :data:`SKINS` skins of the *train* family only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..model.geometry import similarity_transform
from ..paths import TASK_HINT
from .dataset import CYCLES, CYCLES_SEED, SHARD, VERSION, fill, load, look, true_landmarks
from .features import FACE_POINTS, encoder_features, landmarks_3d, mean_template

DATA_SEED = 7100
SKINS = 400


def features_of(data: dict[str, np.ndarray], template: np.ndarray) -> np.ndarray:
    return np.stack([encoder_features(p, d, s, template)
                     for p, d, s in zip(data["points_px"], data["depth_px"], data["scores"])])


def landmark_residuals(points: np.ndarray, truth: np.ndarray, template: np.ndarray) -> np.ndarray:
    """How far MediaPipe's face points lie from the true ones, in the template's frame: (N, 468 × 3) =
    (truth − MediaPipe's points) mapped by each face's alignment (:func:`likeness.learned.features.align`), in
    inter-ocular distances. ``points`` (N, 478, 3) and ``truth`` (N, 468, 3) as ``landmarks_3d`` gives them."""
    out = np.empty((len(points), FACE_POINTS * 3), np.float32)
    for n, (seen, true) in enumerate(zip(points, truth)):
        scale, rot, _ = similarity_transform(template[:FACE_POINTS], seen[:FACE_POINTS])
        out[n] = ((true - seen[:FACE_POINTS]) @ rot / scale).ravel()
    return out


def need_task(purpose: str) -> Path:
    """MediaPipe's Face Landmarker bundle (:func:`likeness.capture.blendshapes.find_task`), else exit saying
    ``purpose`` and how to install it."""
    from ..capture.blendshapes import find_task

    task = find_task()
    if task is None:
        raise SystemExit(f"{purpose}: {TASK_HINT}")
    return task


def data_seed(version: int) -> int:
    """The seed of data ``version``'s scenes: :data:`DATA_SEED`, the Cycles version's its own."""
    return CYCLES_SEED if look(version).cycles else DATA_SEED


def rendered(folder: Path, shards: int, workers: int, model: str | None, version: int = VERSION,
             truth: bool = False, render_device: str = "cpu") -> tuple[dict[str, np.ndarray], Path]:
    """The training shards ``0 … shards−1`` in ``folder`` (made first where missing; Cycles' on ``render_device``),
    read into arrays by field, with ``truth`` (:func:`likeness.learned.dataset.true_landmarks`) where asked; and the
    head model's path."""
    from ..model.headmodel import resolve_model_path

    model_path = resolve_model_path(model)
    task = need_task("MediaPipe's Face Landmarker model is needed for the training data")
    photo = None
    if look(version).photo_skin:
        from .photoskin import photo_bundle

        photo = str(photo_bundle(folder, str(model_path)))
    seed = data_seed(version)
    paths = fill(folder, str(model_path), str(task), "train", shards, seed, SKINS, workers, version=version,
                 photo_bundle=photo, render_device=render_device)
    data = load(paths)
    if truth:
        data["truth"] = np.concatenate([true_landmarks(str(model_path), folder, "train", i, seed, SKINS, version)
                                        for i in range(shards)])
    return data, model_path


def before_last_shard(data: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``extra``'s shards joined to ``data``'s (arrays by field, render by render) before its last shard, which the
    training keeps aside for validation."""
    last = len(data["found"]) - SHARD
    return {k: np.concatenate([v[:last], extra[k], v[last:]]) for k, v in data.items()}


def prepare(folder: Path, shards: int, workers: int, model: str | None, version: int = VERSION,
            truth: bool = False, cycles_shards: int = 0, render_device: str = "cpu") -> dict:
    """The training set from the render cache in ``folder`` (shards made first where missing): features, crops,
    truth, the landmark template (the Procrustes mean of the first 2000 faces), the crop template, the
    expression names and how the data was made; with ``truth`` also ``residuals``, how far MediaPipe's face
    points lie from the true ones (:func:`landmark_residuals`, :func:`likeness.learned.dataset.true_landmarks`).
    ``cycles_shards`` shards of the Cycles version (:data:`likeness.learned.dataset.CYCLES`) join ``version``'s,
    before its last shard (the training's validation stays that shard); the Cycles shards are rendered on
    ``render_device`` where missing."""
    from ..model.correspondence import load_table
    from ..model.headmodel import load_ict
    from .features import crop_template

    start = time.perf_counter()
    data, model_path = rendered(folder, shards, workers, model, version, truth, render_device)
    if cycles_shards:
        data = before_last_shard(data, rendered(folder, cycles_shards, workers, model, CYCLES, truth,
                                                render_device)[0])
    head = load_ict(model_path)
    keep = data["found"] > 0
    print(f"{int(keep.sum())} of {len(keep)} renders have a face found by MediaPipe", flush=True)
    data = {k: v[keep] for k, v in data.items()}
    faces = np.stack([landmarks_3d(p, d) for p, d in zip(data["points_px"], data["depth_px"])]).astype(np.float64)
    template = mean_template(faces[:2000])
    extra = {"residuals": landmark_residuals(faces, data["truth"].astype(np.float64), template)} if truth else {}
    return {**extra, "features": features_of(data, template), "crops": data["crop"],
            "expression": data["expression"].astype(np.float32), "angles": data["angles"].astype(np.float32),
            "template": template, "crop_template": crop_template(load_table().points(head.neutral.astype(np.float64))),
            "names": head.expression_names,
            "meta": {"data_seed": data_seed(version), "renders": int(len(keep)), "faces": int(keep.sum()),
                     "shards": shards, "cycles_shards": cycles_shards, "cycles_seed": CYCLES_SEED,
                     "skin_family": "train", "data_version": version,
                     "data_minutes": round((time.perf_counter() - start) / 60, 1)}}
