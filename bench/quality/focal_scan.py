"""Which focal length should the fit assume for a photo without EXIF? (docs/quality.md, "Focal length")

Usage: .venv/bin/python bench/quality/focal_scan.py [--heads 40]    # about 2 minutes on 2 cores

A photo without EXIF does not say how far the camera was: the same face 70 px between the eyes may be a phone
selfie at 35 cm (strong perspective: nose large, ears hidden) or a portrait from 3 m (nearly flat). The fit assumes
one focal length (``likeness.capture.images.DEFAULT_FOCAL_MM``), hence one distance, and what it assumes wrongly
the identity absorbs. This scan measures what that costs the identity and picks the assumption that costs least
over the range of real cameras.

The **tuning set** (never a benchmark's): ``--heads`` random ICT identities (seed ``SEED``), 60 % with a mild
expression (the encoder's training draws at half weight), yaw ±25°, pitch ±10°, roll ±6°, painted with the
encoder's *train* skin family and drawn with its NumPy renderer (``likeness.learned.render``) at 512 × 512, 60–90 px
between the eyes. Each head is photographed from ``DISTANCES`` (0.35–3 m) with the focal length that keeps its size,
i.e. lenses from about 28 to 240 mm full-frame equivalent; the real MediaPipe reads each image once; the product's
fit (no encoder) then runs with the true focal length and with each assumed one in ``LENSES_MM``. Figure: the
median vertex error (mm) of the fitted neutral face region against the true one after a similarity alignment
(scale and pose do not count), averaged over the heads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
from photo_fits import FACE_LANDMARKER, model_path, write_results  # noqa: E402

SEED = 4343
DISTANCES = (0.35, 0.6, 1.0, 1.7, 3.0)  # metres, camera to face
LENSES_MM = (50.0, 62.5, 75.0, 85.0, 100.0, 125.0, 150.0)  # assumed full-frame equivalents
SIZE = 512
IOD_M = 0.063  # a typical inter-ocular distance, only to set each lens so the face keeps its size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heads", type=int, default=40)
    args = ap.parse_args()

    from likeness.capture.gaze import eye_turns, turn_eyes
    from likeness.errors import NoFaceFound
    from likeness.learned.render import HeadRenderer, Lighting
    from likeness.learned.scenes import draw_expression
    from likeness.learned.skins import SkinPainter, skin_seeds
    from likeness.model.camera import Camera
    from likeness.model.geometry import head_rotation, similarity_transform
    from likeness.service.pipeline import Engine

    if FACE_LANDMARKER.is_file():  # MediaPipe's blendshape scores, as the product uses them
        os.environ.setdefault("LIKENESS_MEDIAPIPE_TASK", str(FACE_LANDMARKER))
    engine = Engine()
    engine.use_encoder = False
    model, basis = engine.model(model_path())
    painter, renderer = SkinPainter(model), HeadRenderer(model)
    skins = skin_seeds(32, "train")
    centre = model.neutral[model.landmarks_68].mean(0)
    face = model.face_vertex_count
    zero = np.zeros(len(model.expression_names))
    light = Lighting(key_direction=np.array([0.3, 0.4, 0.86]), key=np.full(3, 1.2), fill=np.full(3, 0.4),
                     specular=0.2, wrap=0.3)
    errors: dict[str, dict[float, list[float]]] = {}
    start = time.perf_counter()
    for head in range(args.heads):
        rng = np.random.default_rng([SEED, head])
        identity = rng.standard_normal(60) * rng.uniform(0.6, 1.1)
        yaw, pitch, roll = rng.uniform(-1, 1, 3) * (25, 10, 6)
        rotation = head_rotation(yaw, pitch, roll)
        iod_px = rng.uniform(60, 90)
        skin = painter.paint(int(rng.choice(skins)), "train")
        expression, _ = draw_expression(model.expression_names, rng)
        expression = expression * 0.5 * (rng.random() < 0.6)
        verts = turn_eyes(model, model.vertices(identity, expression),
                          eye_turns(dict(zip(model.expression_names, expression))))
        truth = model.vertices(identity, zero)[:face]
        for distance in DISTANCES:
            focal = iod_px * distance / IOD_M
            camera = Camera(float(focal), (SIZE / 2, SIZE / 2), (SIZE, SIZE))
            rgb = renderer.render(verts, skin, rotation, np.array([0, 0, -distance]) - rotation @ centre, camera,
                                  light, np.random.default_rng([SEED, head, int(distance * 100)]))
            try:
                found = engine.detector().detect(rgb)
            except NoFaceFound:
                continue
            scores = engine.scorer().scores(rgb, found.box_px) if engine.scorer() else None
            true_mm = focal / SIZE * 36.0
            for label, lens in [("true", true_mm)] + [(f"{mm:g} mm", mm) for mm in LENSES_MM]:
                cam = Camera(lens / 36.0 * SIZE, (SIZE / 2, SIZE / 2), (SIZE, SIZE))
                fit = engine.fit(basis, engine.observe(model, [cam], [found], [scores], [rgb]), engine.settings)
                fitted = model.vertices(fit.identity, zero)[:face]
                scale, rot, trans = similarity_transform(fitted, truth)
                err = np.linalg.norm(scale * fitted @ rot.T + trans - truth, axis=1) * 1000.0
                errors.setdefault(label, {}).setdefault(distance, []).append(float(np.median(err)))
        print(f"head {head + 1}/{args.heads} ({time.perf_counter() - start:.0f} s)", flush=True)

    labels = list(errors)
    table = {label: {str(d): round(float(np.mean(v)), 3) for d, v in errors[label].items()} for label in labels}
    # the assumption's expected cost: every distance (lens) equally likely, i.e. log-uniform over 28–240 mm
    expected = {label: round(float(np.mean([np.mean(v) for v in errors[label].values()])), 3) for label in labels}
    print("median face vertex error (mm), mean over heads; rows: assumed lens, columns: camera distance (m)")
    print("assumed      " + "  ".join(f"{d:>5}" for d in DISTANCES) + "   all")
    for label in labels:
        print(f"{label:>10}   " + "  ".join(f"{table[label][str(d)]:5.2f}" for d in DISTANCES)
              + f"   {expected[label]:.3f}")
    write_results("focal_scan", {"median_face_error_mm": table, "all_distances_mm": expected,
                                 "seconds": round(time.perf_counter() - start, 1)},
                  {"seed": SEED, "heads": args.heads, "distances_m": DISTANCES, "lenses_mm": LENSES_MM})


if __name__ == "__main__":
    main()
