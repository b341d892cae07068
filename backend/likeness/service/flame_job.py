"""``likeness reconstruct --model flame --encoder smirk``: photos → SMIRK → a FLAME-topology bundle.

Per photo: MediaPipe's landmarks, SMIRK's crop and its reading (shape, expression, eyelids, jaw, head pose and
weak-perspective camera). The identity is the mean of the photos' shape readings. The head pose in the photo's
perspective camera starts from SMIRK's pose and camera and is refined by PnP on MediaPipe's landmarks, which the
FLAME↔ICT bridge places on FLAME's surface. Then the same light estimate, delighting, UV bake, maps and writer as
the ICT pipeline, on FLAME's mesh; the shape keys are FLAME's (:mod:`likeness.model.flame_head`), and each photo also
carries SMIRK's raw reading (``smirk``) and its ARKit reading through the bridge (``arkit``: ICT's 53 weights).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import faults
from ..appearance.albedo import delight, match_tones
from .assemble import add_hair, add_maps, hair_masks_and_color, iris_colors
from .bundle import BundleWriter, check_output
from ..model.camera import Camera, model_to_camera
from ..model.correspondence import load_table
from ..errors import Cancelled
from ..model.flame import Flame, rodrigues
from ..model.flame import load as load_flame
from ..model.flame_bridge import Bridge, build
from ..model.flame_head import head_model, key_weights
from ..model.geometry import head_angles
from ..capture.images import load_photo
from ..appearance.texture import PhotoView, bake_textures

Report = Callable[[str, float, str], None]
_CACHE: dict = {}  # (flame path, ICT path) -> (Flame, Bridge, HeadModel): built once per process


def flame_models(ict) -> tuple[Flame, Bridge, object]:
    """The installed FLAME, its bridge to the ICT model ``ict`` and its head model (cached per process)."""
    from .models import SPECS

    flame_path = SPECS["flame"].path()
    key = (str(flame_path), flame_path.stat().st_mtime if flame_path.is_file() else 0, ict.name, ict.vertex_count)
    if key not in _CACHE:
        flame = load_flame(flame_path)
        bridge = build(flame, ict, load_table())
        _CACHE.clear()
        arkit = (bridge.names, bridge.transfer(ict.expression_basis))
        _CACHE[key] = (flame, bridge, head_model(flame, bridge.landmarks_68, arkit))
    return _CACHE[key]


def smirk_evidence(engine, ict, images: list[np.ndarray], found: list) -> list[np.ndarray]:
    """SMIRK's reading of each photo as ICT's expression weights (through FLAME and the bridge): the expression
    evidence of the ICT fit with ``--encoder smirk`` (``fit.evidence`` lists ``smirk``)."""
    flame, bridge, _ = flame_models(ict)
    reads = smirk_runner(engine, engine.device).read(images, [lm.points_px for lm in found])
    out = []
    for read in reads:
        pose = np.zeros(3 * len(flame.parents))
        pose[6:9] = read["jaw_params"]
        shape = read["shape_params"]
        moved = flame.vertices(shape, read["expression_params"], pose, read["eyelid_params"]) - flame.shaped(shape)
        weights = dict(zip(bridge.names, bridge.arkit(moved)))
        out.append(np.array([weights.get(n, np.nan) for n in ict.expression_names]))
    return out


def smirk_runner(engine, device: str):
    """SMIRK's encoder on ``device`` (kept on the engine while the checkpoint and device stay the same)."""
    from ..learned.runtime import torch_available
    from .user_models import find_smirk

    path = find_smirk()
    if not torch_available():
        from ..errors import ModelMissing

        raise ModelMissing("SMIRK needs torch and safetensors, which are not installed.",
                           "pip install -e '.[smirk]' (or `python -m likeness.learned.setup_torch`).")
    from ..learned.smirk import SmirkRunner

    key = (str(path), path.stat().st_mtime, device)
    cached = getattr(engine, "_smirk", None)
    if cached is None or cached[0] != key:
        engine._smirk = (key, SmirkRunner(path, device))
    return engine._smirk[1]


def smirk_pose(read: dict, flame: Flame, shaped: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray] | None:
    """SMIRK's global rotation and weak-perspective camera as a perspective pose (R, t) in the photo's camera:
    the global joint is placed where SMIRK's orthographic camera puts it, at the depth whose image scale matches
    SMIRK's. None when SMIRK's scale is not positive."""
    scale, tx, ty = read["cam"]
    matrix = read["crop"]
    k = matrix[0, 0]
    if scale <= 1e-6 or k <= 0:
        return None
    half = 112.0  # SMIRK's renderer: NDC [−1, 1] over the 224 px crop, y down
    rot = rodrigues(read["pose_params"][None])[0]
    root = flame.joints(shaped)[0]
    crop_px = np.array([(scale * (root[0] + tx) + 1) * half, (1 - scale * (root[1] + ty)) * half])
    image_px = (crop_px - matrix[:, 2]) / k
    depth = camera.focal_px / (scale * half / k)
    cx, cy = camera.principal_point
    anchor = np.array([(image_px[0] - cx) * depth / camera.focal_px, -(image_px[1] - cy) * depth / camera.focal_px,
                       -depth])
    return rot, anchor - rot @ root


def pnp_pose(points3d: np.ndarray, points_px: np.ndarray, camera: Camera,
             start: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Head pose (R, t) in our camera frame from 3D head points and their pixels (OpenCV's PnP: EPnP, then
    Levenberg–Marquardt from SMIRK's pose when it is in front of the camera)."""
    import cv2

    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV camera (y down, looks along +z) <-> ours (y up, looks along −z)
    cx, cy = camera.principal_point
    K = np.array([[camera.focal_px, 0, cx], [0, camera.focal_px, cy], [0, 0, 1.0]])
    obj, img = np.ascontiguousarray(points3d, np.float64), np.ascontiguousarray(points_px, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
    if start is not None and start[1][2] < 0:
        rvec = cv2.Rodrigues(flip @ start[0])[0]
        tvec = (flip @ start[1]).reshape(3, 1)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    rot = cv2.Rodrigues(rvec)[0]
    return flip @ rot, flip @ tvec.ravel()


def reconstruct_flame(engine, request, report: Report, cancelled: Callable[[], bool]) -> dict:
    """Run one ``--model flame --encoder smirk`` job; returns ``{"bundle": path, "warnings": [...]}``."""

    def step(stage: str, fraction: float, message: str) -> None:
        if cancelled():
            raise Cancelled()
        faults.check(stage)
        report(stage, fraction, message)

    output = check_output(request.output)
    step("load", 0.0, "Loading FLAME, SMIRK and the bridge to the ARKit rig")
    from .models import SPECS

    if not SPECS["flame"].path().is_file():
        load_flame(SPECS["flame"].path())  # raises ModelMissing with the install hint
    runner = smirk_runner(engine, request.device)  # before the bridge: a missing SMIRK is reported at once
    flame, bridge, model = flame_models(engine.model(None)[0])
    photos = [load_photo(p, request.lens_mm) for p in request.photos]
    found = []
    for i, photo in enumerate(photos):
        step("landmarks", 0.1 + 0.2 * i / len(photos), f"Finding face landmarks ({i + 1}/{len(photos)})")
        found.append(engine.detector().detect(photo.rgb, photo.path.name))
    step("fit", 0.3, "Reading the photos with SMIRK")
    reads = runner.read([p.rgb for p in photos], [lm.points_px for lm in found])
    shape = np.mean([r["shape_params"] for r in reads], axis=0)  # one identity shared by all photos
    shaped = flame.shaped(shape)
    cameras = [Camera(p.focal_px, p.principal_point, p.size) for p in photos]
    views, delit, fits, segments = [], [], [], []
    for photo, cam, lm, read in zip(photos, cameras, found, reads):
        pose = np.zeros(3 * len(flame.parents))
        pose[6:9] = read["jaw_params"]
        local = flame.vertices(shape, read["expression_params"], pose, read["eyelid_params"])  # no global pose
        mp = bridge.mediapipe_points(local)
        rot, trans = pnp_pose(mp, lm.points_px[:len(mp)], cam, smirk_pose(read, flame, shaped, cam))
        verts_cam = local @ rot.T + trans
        projected, _ = cam.project(bridge.mediapipe_points(verts_cam))
        rmse = float(np.sqrt(((projected - lm.points_px[:len(mp)]) ** 2).sum(1).mean()))
        weights = key_weights(flame, read["expression_params"], read["eyelid_params"], read["jaw_params"])
        arkit = bridge.arkit(local - shaped)
        fits.append((rot, trans, rmse, weights, arkit))
        step("texture", 0.45, "Estimating the light and projecting the photos onto the head")
        seg = engine.segment(photo, lm)  # only skin reaches the albedo (likeness.capture.segment)
        view = replace(PhotoView.build(model, photo.rgb, cam, verts_cam), skin=None if seg is None else seg.skin)
        segments.append(seg)
        delit.append(delight(model, view, rot, occlusion=request.occlusion))
        views.append(view)
    delit = match_tones(delit)  # several photos: one skin tone, each cast moved into its light
    views = [replace(view, rgb=lit.albedo_rgb) for view, lit in zip(views, delit)]
    with BundleWriter(output) as writer:
        textures = bake_textures(model, views, request.texture_size)
        texture_files = {i: add_maps(writer, model, i, t) for i, t in textures.items()}
        hair = add_hair(writer, model, *hair_masks_and_color(model, views, segments, request.texture_size),
                        texture_files)
        step("write", 0.85, "Writing the bundle")
        records = []
        for k, (photo, view, lm, read, lit, fit) in enumerate(zip(photos, views, found, reads, delit, fits)):
            record = _record(model, bridge, photo, view, lm, read, fit, shape)
            record["light"] = {"sh": np.round(lit.light_head, 5).tolist(), "frame": "head",
                               "skin_albedo": np.round(lit.skin_albedo, 5).tolist(),
                               "occlusion": lit.occlusion}
            record["path"] = writer.add_image(f"photos/photo_{k:02d}.jpg", photo.rgb)
            records.append(record)
        from ..appearance.preview import preview_image

        landmarks = np.array(records[0]["landmarks_68_px"])
        writer.add_image("preview.png", lambda: preview_image(photos[0].rgb, model, views[0].vertices_cam,
                                                              views[0].raster, textures, landmarks,
                                                              views[0].normals))
        if cancelled():
            raise Cancelled()
        warnings = [w for record in records for w in record["warnings"]]
        if request.refine:
            warnings.append("--refine is not used with FLAME heads: the pose is refined on the landmarks only.")
        path = writer.finish(model=model, job_name=request.name or photos[0].path.stem,
                             vertices=shaped.astype(np.float32), identity=shape, photos=records,
                             texture_files=texture_files, warnings=warnings,
                             base_colors=iris_colors(model, photos, found, delit),
                             extra={"smirk": _provenance(runner.path), **({"hair": hair} if hair else {})})
    report("write", 1.0, "Done")
    return {"bundle": str(path), "warnings": warnings}


def _record(model, bridge: Bridge, photo, view: PhotoView, lm, read: dict, fit: tuple, shape: np.ndarray) -> dict:
    rot, trans, rmse, weights, arkit = fit
    cam = view.camera
    lm68, _ = cam.project(view.vertices_cam[model.landmarks_68])
    yaw, pitch, roll = head_angles(rot)
    iod = max(lm.interocular_px, 1.0)
    warnings = [] if rmse / iod < 0.1 else [f"{photo.path.name}: FLAME does not fit the landmarks well "
                                            f"({rmse / iod:.0%} of the eye distance)."]
    return {
        "path": None, "source_path": str(photo.path), "image_size": list(photo.size),
        "camera": {"focal_px": round(cam.focal_px, 4), "principal_point_px": list(cam.principal_point),
                   "focal_source": photo.focal_source},
        "pose": {"yaw_deg": round(yaw, 4), "pitch_deg": round(pitch, 4), "roll_deg": round(roll, 4),
                 "model_to_camera": np.round(model_to_camera(rot, trans), 7).tolist()},
        "expression": {n: round(float(w), 5) for n, w in zip(model.expression_names, np.r_[
            weights, np.zeros(len(model.expression_names) - len(weights))])},
        "identity": [round(float(v), 6) for v in shape],
        "landmarks_68_px": np.round(lm68, 3).tolist(),
        "fit": {"landmark_rmse_px": round(rmse, 4), "landmark_rmse_iod": round(rmse / iod, 5),
                "confidence": round(float(np.clip(1 - rmse / iod / 0.1, 0, 1)), 3),
                "evidence": ["smirk", "landmarks"], "iterations": 0, "landmarks_used": len(bridge.mediapipe_tris)},
        "gaze": {}, "face_box_px": [round(v, 2) for v in lm.box_px], "warnings": warnings,
        "smirk": {k: np.round(read[k], 6).tolist() for k in ("pose_params", "cam", "expression_params",
                                                            "eyelid_params", "jaw_params")},
        "arkit": {n: round(float(w), 5) for n, w in zip(bridge.names, arkit)},
    }


def _provenance(checkpoint: Path) -> dict:
    """The bundle's ``smirk`` record: which encoder and weights read the photos, and their licences."""
    import json

    from .models import SPECS

    source = Path(checkpoint).parent / "source.json"
    return {"encoder": "SMIRK (georgeretsi/smirk, code MIT), Likeness's own torch implementation",
            "checkpoint": str(checkpoint), "source": json.loads(source.read_text()) if source.is_file() else None,
            "weights_license": SPECS["smirk"].license, "flame_license": SPECS["flame"].license,
            "non_commercial": True}
