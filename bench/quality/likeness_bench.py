"""Likeness bench (docs/quality.md, "Likeness"): does a face-recognition network take the head for the person?

Usage: .venv/bin/python bench/quality/likeness_bench.py [--samples 16] [--texture 1024] [--reuse] [--fit FIELD=VALUE]
       [--hair-volume M] [--no-encoder]
About 25 min on 2 quiet CPU cores (most of it Cycles). Writes bench/results/likeness.json; bundles and renders stay in
bench/results/likeness/ (``--reuse`` keeps the bundles already there and only renders and scores again).

For every dev photo (../shared/data/faces_dev) of a person with two or more photos, the product reconstructs a
head from that one photo (``Engine.reconstruct``, as ``likeness reconstruct photo.jpg`` does); the bundle is
imported into Blender with the add-on and rendered with a neutral expression under even light, frontal and turned
30° (:mod:`likeness_render`). dlib's face-recognition ResNet (:mod:`face_id`) compares each render with every
real dev photo except its source photo: the person's other photos are same-person pairs, everyone else's are
different-person pairs. Rows:

- ``fitted``: the fitted head (the product's output);
- ``mean_head``: the ICT mean head wearing the same textures (what the fitted geometry adds over the texture);
- ``photo``: each real photo against the others (the ceiling);
- ``multi``: people with three or more photos, reconstructed from up to three photos in one job, compared with
  the photos that job did not use.

Per row and view: mean same-person distance, verification AUC, TAR at dlib's 0.6 threshold, rank-1
identification among all dev photos; and for ``fitted`` the paired gain over ``mean_head`` (mean over the
same-person pairs of the mean head's distance minus the fitted head's). Nothing here is tuned on: the bench only
scores; the fit's settings were chosen on synthetic renders and the landmark benches. ``--fit FIELD=VALUE`` (a
``FitSettings`` field, repeatable) checks a setting chosen elsewhere, in a folder and results file of its own
(``likeness_fit_FIELD-VALUE``), never the default figures; ``--hair-volume M`` renders with the add-on's hair
volume (``likeness_hair_volume-M``); ``--no-encoder`` reconstructs without the expression encoder, which the
product uses for photos where torch is installed (``likeness_no_encoder``; before 5 December 2026 the default run
was this one and ``--encoder`` made ``likeness_encoder``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path

import sys

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "scripts"), str(Path(__file__).resolve().parent)]
import face_id  # noqa: E402
from photo_fits import FACE_LANDMARKER, RESULTS, SHARED, fit_settings, fit_suffix, model_path, write_results  # noqa: E402

DEV = SHARED / "data" / "faces_dev"
VIEWS = (0.0, 30.0)  # degrees of yaw
TARGETS = {"same_mean_30": 0.42, "tar_30": 0.95, "rank1_30": 0.97, "gain_over_mean_head": 0.08}


def people(items: list[dict]) -> dict[str, list[int]]:
    """Person → indices of their photos in the manifest."""
    out = defaultdict(list)
    for i, it in enumerate(items):
        out[it["identity"]].append(i)
    return dict(out)


def jobs(items: list[dict]) -> list[dict]:
    """The reconstructions: one per photo of a person with ≥ 2 photos, and the multi-photo jobs."""
    out = []
    for person, idx in people(items).items():
        if len(idx) < 2:
            continue
        out += [{"name": f"single_{i:03d}", "kind": "single", "person": person, "sources": [i]} for i in idx]
        if len(idx) >= 3:  # two jobs: even and odd photos, up to three each; each leaves the other half to compare
            for half in (0, 1):
                src = idx[half::2][:3]
                out.append({"name": f"multi_{person}_{half}", "kind": "multi", "person": person, "sources": src})
    return out


def reconstruct(work: Path, items: list[dict], todo: list[dict], texture: int, reuse: bool, segmentation: bool,
                fit: dict[str, float] | None = None, encoder: bool | None = None) -> bool:
    """Write each job's bundle to ``work``/bundles/NAME; returns whether MediaPipe's blendshape scores were used.

    Like a set-up product (``likeness models install mediapipe-blendshapes``), the fit uses MediaPipe's
    blendshape model: the copy in ../shared unless ``$LIKENESS_MEDIAPIPE_TASK`` names another. (Runs before
    5 December 2026 depended on the shell's ``$LIKENESS_MEDIAPIPE_TASK``; without the model the figures differ by
    about 0.01, docs/quality.md section 7.)
    """
    from likeness.service.pipeline import Engine, ReconstructRequest

    if FACE_LANDMARKER.is_file():
        os.environ.setdefault("LIKENESS_MEDIAPIPE_TASK", str(FACE_LANDMARKER))
    engine = Engine()
    engine.use_encoder = encoder  # None: the product's default (the expression encoder where torch is installed)
    engine.use_segmentation = segmentation
    if fit:  # before the model loads: its landmark basis is built with the settings
        engine.settings = dataclasses.replace(engine.settings, **fit)
    reading = engine.encoder(engine.model(model_path())[0]) is not None
    (work / "bundles").mkdir(parents=True, exist_ok=True)
    for job in todo:
        out = work / "bundles" / job["name"]
        if reuse and (out / "manifest.json").exists():
            evidence = json.loads((out / "manifest.json").read_text())["photos"][0]["fit"]["evidence"]
            if ("expression_encoder" in evidence) != reading:
                raise SystemExit(f"{out} was made {'without' if reading else 'with'} the expression encoder; "
                                 "run without --reuse")
            continue
        shutil.rmtree(out, ignore_errors=True)
        photos = [str(DEV / items[i]["file"]) for i in job["sources"]]
        engine.reconstruct(ReconstructRequest(photos=photos, output=str(out), texture_size=texture,
                                              model=model_path(), name=job["name"]))
    return engine.scorer() is not None


def render_name(job: dict, head: str, yaw: float) -> str:
    """The name of one render: the job, which head (``fitted`` or ``mean_head``), the view's yaw."""
    return f"{job['name']}_{head}_{int(yaw)}"


def render_names(job: dict) -> list[str]:
    """The renders of one job: its fitted head (and, for one-photo jobs, the mean head) at every view."""
    heads = ("fitted", "mean_head") if job["kind"] == "single" else ("fitted",)
    return [render_name(job, head, yaw) for head in heads for yaw in VIEWS]


def render(work: Path, todo: list[dict], samples: int, reuse: bool, hair_volume: float = 0.0) -> dict[str, dict]:
    """Render every bundle (fitted, and for single jobs the mean head) at every view; returns, per render name,
    its path and the fallback face box (the projected 68 landmark vertices' bounds), also kept in
    ``work``/renders/index.json (with ``reuse``, jobs rendered before are not rendered again)."""
    index_path = work / "renders" / "index.json"
    out = json.loads(index_path.read_text()) if reuse and index_path.exists() else {}
    todo = [j for j in todo if not all(n in out and Path(out[n]["path"]).exists() for n in render_names(j))]
    if not todo:
        return out
    from likeness_render import BundleRenderer, project  # imports bpy: only now
    from likeness.model.headmodel import load_ict

    mean = load_ict(model_path()).neutral.astype(np.float64)
    renderer = BundleRenderer(samples, hair_volume=hair_volume)
    for job in todo:
        bundle = work / "bundles" / job["name"]
        with np.load(bundle / "head.npz", allow_pickle=False) as npz:
            fitted, landmarks = npz["vertices"], npz["landmarks_68"]
        heads = [("fitted", None)] + ([("mean_head", mean)] if job["kind"] == "single" else [])
        for head, geometry in heads:
            centre = renderer.load(bundle, geometry)
            verts = fitted if geometry is None else geometry
            for yaw in VIEWS:
                name = render_name(job, head, yaw)
                path = work / "renders" / f"{name}.png"
                renderer.render(centre, yaw, path)
                px = project(verts[landmarks], centre, yaw)
                out[name] = {"path": str(path), "box": [*px.min(0), *px.max(0)]}
        index_path.write_text(json.dumps(out))
    return out


def describe_photos(judge: face_id.FaceJudge, items: list[dict]) -> tuple[np.ndarray, list[bool]]:
    """Descriptors (N,128) of the dev photos; the manual landmarks' bounds when dlib finds no face."""
    from likeness.capture.images import load_photo

    rows, found = [], []
    for it in items:
        pts = np.asarray(it.get("landmarks") or np.zeros((0, 2)), float)
        box = (*pts.min(0), *pts.max(0)) if len(pts) else None
        d, ok = judge.describe(load_photo(DEV / it["file"]).rgb, box)
        if d is None:
            raise SystemExit(f"dlib finds no face in {it['file']} and it has no manual landmarks")
        rows.append(d)
        found.append(ok)
    return np.stack(rows), found


def score(items: list[dict], todo: list[dict], renders: dict, judge: face_id.FaceJudge) -> dict:
    """All rows' figures."""
    from PIL import Image

    gallery, photo_found = describe_photos(judge, items)
    person = np.array([it["identity"] for it in items])
    result = {"photos_detected": float(np.mean(photo_found))}
    # the ceiling: each photo of a person with ≥ 2 photos against all others
    probes = np.array([i for idx in people(items).values() if len(idx) >= 2 for i in idx])
    d = face_id.distance_matrix(gallery[probes], gallery)
    own = probes[:, None] == np.arange(len(items))
    result["photo"] = face_id.verification(d, person[probes], person, own).as_dict()
    descriptors, detected = {}, {}
    for name, r in renders.items():
        descriptors[name], detected[name] = judge.describe(np.asarray(Image.open(r["path"]).convert("RGB")),
                                                           tuple(r["box"]))
    for kind, heads in (("single", ("fitted", "mean_head")), ("multi", ("fitted",))):
        group = [j for j in todo if j["kind"] == kind]
        exclude = np.zeros((len(group), len(items)), bool)
        for row, job in enumerate(group):
            exclude[row, job["sources"]] = True
        owners = np.array([j["person"] for j in group])
        for head in heads:
            for yaw in VIEWS:
                names = [render_name(j, head, yaw) for j in group]
                d = face_id.distance_matrix(np.stack([descriptors[n] for n in names]), gallery)
                row = "multi" if kind == "multi" else head
                fig = face_id.verification(d, owners, person, exclude).as_dict()
                fig["render_detected"] = float(np.mean([detected[n] for n in names]))
                fig["same_pairs_distances"] = d[(owners[:, None] == person[None]) & ~exclude].tolist()
                result.setdefault(row, {})[f"{int(yaw)}"] = fig
    for yaw in VIEWS:
        fit = np.array(result["fitted"][f"{int(yaw)}"]["same_pairs_distances"])
        base = np.array(result["mean_head"][f"{int(yaw)}"]["same_pairs_distances"])
        result["fitted"][f"{int(yaw)}"]["gain_over_mean_head"] = float((base - fit).mean())
    return result


def table(result: dict) -> str:
    lines = ["| row | view | same-person distance | AUC | TAR@0.6 | rank-1 | probes | face found in render |",
             "|---|---|---|---|---|---|---|---|"]
    p = result["photo"]
    lines.append(f"| photo to photo (ceiling) | – | {p['same_mean']:.3f} | {p['auc']:.3f} | {p['tar']:.0%} | "
                 f"{p['rank1']:.0%} | {p['probes']} | – |")
    for row, label in (("fitted", "fitted head, one photo"), ("mean_head", "ICT mean head, same texture"),
                       ("multi", "fitted head, up to 3 photos")):
        for view, f in result[row].items():
            gain = f" (gain over mean head {f['gain_over_mean_head']:+.3f})" if "gain_over_mean_head" in f else ""
            lines.append(f"| {label} | {view}° | {f['same_mean']:.3f}{gain} | {f['auc']:.3f} | {f['tar']:.0%} | "
                         f"{f['rank1']:.0%} | {f['probes']} | {f['render_detected']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    ap.add_argument("--texture", type=int, default=1024, help="texture size of the bundles")
    ap.add_argument("--reuse", action="store_true", help="keep bundles and renders already in bench/results/likeness")
    ap.add_argument("--no-segmentation", action="store_true",
                    help="bake every covered pixel into the skin (no hair mask), as before the clean skin: "
                         "bench/results/likeness_no_segmentation.json, bundles and renders in the folder of that name")
    ap.add_argument("--limit", type=int, default=0, help="only the first N jobs (a quick look; figures partial)")
    ap.add_argument("--fit", action="append", default=[], metavar="FIELD=VALUE",
                    help="a fit setting (likeness.capture.fit.FitSettings field, a number) for this run only")
    ap.add_argument("--no-encoder", action="store_true",
                    help="fit without the learned expression encoder: bench/results/likeness_no_encoder.json")
    ap.add_argument("--hair-volume", type=float, default=0.0, metavar="M",
                    help="import with the add-on's hair volume, metres (0: none, the add-on's default): "
                         "bench/results/likeness_hair_volume-M.json")
    args = ap.parse_args()
    fit = fit_settings(args.fit)
    name = "likeness_no_segmentation" if args.no_segmentation else "likeness"
    name += fit_suffix(fit)
    if args.hair_volume > 0:
        name += f"_hair_volume-{args.hair_volume:g}"
    if args.no_encoder:
        name += "_no_encoder"
    work = RESULTS / name
    items = json.loads((DEV / "manifest.json").read_text())["items"]
    todo = jobs(items)[: args.limit or None]
    t0 = time.perf_counter()
    blendshapes = reconstruct(work, items, todo, args.texture, args.reuse, not args.no_segmentation, fit,
                              False if args.no_encoder else None)
    t_fit = time.perf_counter() - t0
    renders = render(work, todo, args.samples, args.reuse, args.hair_volume)
    t_render = time.perf_counter() - t0 - t_fit
    judge = face_id.FaceJudge()
    result = score(items, todo, renders, judge) if not args.limit else {"partial": True}
    result.update({"seconds": {"reconstruct": t_fit, "render": t_render, "total": time.perf_counter() - t0},
                   "targets": TARGETS, "blendshapes": blendshapes})
    if args.limit:  # a quick look never replaces the full figures
        name += "_partial"
    write_results(name, result, vars(args))
    if not args.limit:
        print(table(result))
    print(f"bench/results/{name}.json ({result['seconds']['total']:.0f} s)")


if __name__ == "__main__":
    main()
