"""Calibrate the MediaPipe → ICT correspondence table on renders whose geometry is known.

Usage: .venv/bin/python bench/quality/calibrate_correspondence.py [--scenes 80] [--oval frontal] [--reuse] [--no-write]
       .venv/bin/python bench/quality/calibrate_correspondence.py measure [--benchmark] [--full] [--table FILE]

About 8 minutes on 2 CPU cores the first time (80 Cycles renders at ~5 s, four skin reconstructions), 2 minutes
with the renders cached, seconds with ``--reuse``.

The geometric table (``python -m likeness.model.correspondence``: MediaPipe's canonical mesh aligned to ICT) says
where each of the 468 landmarks *should* lie on the head; this script finds where MediaPipe's detector *does*
put them on ICT heads, and writes that as the committed table ``likeness/data/mediapipe_to_ict.json``:

1. Calibration scenes (:func:`calibration_scenes`, their own seed, none shared with the benchmark): ICT
   identities, mostly neutral or mild expressions (one or two actions, weights ≤ 0.6), yaw ±35°, pitch ±12°,
   roll ±8°. Rendered with the benchmark's Cycles renderer (``synth_render.py``), dressed in turn with the skins
   of several dev photos, none of them the benchmark's skin. Cached under ``bench/results/calibration/``.
2. Per render: the product's detector (``LandmarkDetector``) finds the 468 landmarks; each landmark's camera
   ray is cast onto the true posed mesh (a depth-tested rasterisation of everything the render shows picks the
   visible triangle; barycentrics are perspective-correct). A ray that meets no face-region skin (it passes
   into the eye opening, between the lips, past the silhouette) snaps to the nearest visible face-region
   point in the image when that is within :data:`SNAP_IOD` of the inter-ocular distance, and is dropped
   otherwise. The hit (triangle, barycentrics) is carried to the rest mesh (zero identity and expression).
3. Per landmark: the coordinate-wise median of its rest-space points, projected to the closest point of the
   rest face surface, is the new entry; landmarks with fewer than :data:`MIN_HITS` hits (or a quarter of the
   renders) keep the geometric table's entry. Face-oval landmarks follow the silhouette, which slides over the
   head with yaw (their hits spread over 2–3 cm), so they are calibrated on near-frontal renders only
   (``--oval``, :func:`calibrate`).

Before writing, a copy of the table being replaced is kept as ``bench/results/mediapipe_to_ict_geometric.json``
(once: an existing copy is never overwritten). Per-landmark statistics go to
``bench/results/calibration/calibration.json``.

``measure`` scores the geometric and the committed table on the *benchmark's* renders
(``bench/results/synthetic/``, cached by ``synthetic.py``): mean distance between the detected landmarks and
where each table puts them on the true mesh, per region, in % of the inter-ocular distance (the benchmark's
``landmark_consistency``). With ``--benchmark`` it also runs the benchmark's analysis (``synthetic.py``'s, on
the ``--quick`` subset unless ``--full``) with each table, writing ``bench/results/calibration/benchmark_*``.

Reads the ICT model, MediaPipe's canonical mesh and the dev photos from ../shared beside the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "scripts"), str(Path(__file__).resolve().parent)]

from likeness.model import correspondence  # noqa: E402
from likeness.model.camera import Camera, model_to_camera  # noqa: E402
from likeness.model.correspondence import Correspondence, build_correspondence, load_table, save_table  # noqa: E402
from likeness.errors import LikenessError  # noqa: E402
from likeness.model.geometry import _closest_in_triangle, barycentric, head_rotation  # noqa: E402
from likeness.model.headmodel import HeadModel, load_ict  # noqa: E402
from likeness.capture.images import load_photo  # noqa: E402
from likeness.appearance.raster import rasterize  # noqa: E402

import synth_metrics as metrics  # noqa: E402
from synth_scenes import (EXCLUSIVE, FOCAL_FACTOR, GAZE, IDENTITY_COUNT, IDENTITY_SCALE, IMAGE_SIZES, Scene,  # noqa: E402
                          action_weights, actions, make_scenes, posed_vertices)
from synthetic import face_centre, model_path, truth_record  # noqa: E402

SHARED = REPO.parent / "shared"
RESULTS = REPO / "bench" / "results"
CALIBRATION = RESULTS / "calibration"
BENCHMARK = RESULTS / "synthetic"
GEOMETRIC_COPY = RESULTS / "mediapipe_to_ict_geometric.json"
CANONICAL = SHARED / "models" / "mediapipe_canonical" / "canonical_face_model.obj"
DEV_IMAGES = SHARED / "data" / "faces_dev" / "images"
TABLE = REPO / "backend" / "likeness" / "data" / correspondence.TABLE_FILE

SEED = 73041129  # not the benchmark's (synth_scenes.SEED)
#: Dev photos whose reconstructions dress the calibration heads (different people; not the benchmark's skin).
SKINS = ("dev_004_london_021_03.jpg", "dev_008_london_030_03.jpg", "dev_026_london_115_03.jpg",
         "dev_036_london_135_03.jpg")
SKIN_TEXTURE_SIZE = 1024
NEUTRAL_SHARE = 0.4  # of the scenes; the rest carry one or two mild actions
WEIGHT_RANGE = (0.1, 0.6)
YAW_MAX, PITCH_MAX, ROLL_MAX = 35.0, 12.0, 8.0  # degrees, uniform in ±
DISTANCE_RANGE = (0.5, 0.8)
CENTRE_JITTER = 0.08
#: Actions left out of the calibration scenes: ``mouthClose`` brings ``jawOpen`` up to 1 with it.
SKIPPED_ACTIONS = ("mouthClose",)
#: A landmark whose ray misses the face skin snaps to the nearest visible face pixel within this share of the IOD.
SNAP_IOD = 0.04
#: A landmark needs at least this many hits (and a quarter of the detected renders) to be recalibrated.
MIN_HITS = 10
#: Face-oval landmarks are calibrated on the renders whose |yaw| is within this (degrees), see :func:`calibrate`.
FRONTAL_YAW = 10.0
#: Material kinds that render invisibly (helper shells, untextured lashes): they occlude nothing.
INVISIBLE_KINDS = ("overlay", "hair")


# --- scenes and renders -------------------------------------------------------------------------------------

def calibration_scenes(names: tuple[str, ...], centre: np.ndarray, count: int,
                       seed: int = SEED) -> list[tuple[Scene, str]]:
    """``count`` calibration scenes, each with the dev photo whose skin dresses it (cycling through SKINS)."""
    acts = [a for a in actions(names) if a not in SKIPPED_ACTIONS]
    out = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        # neutral scenes spread evenly through the set
        category = "neutral" if int((index + 1) * NEUTRAL_SHARE) > int(index * NEUTRAL_SHARE) else "mild"
        expression: dict[str, float] = {}
        if category == "mild":
            count, chosen = int(rng.integers(1, 3)), []
            for act in rng.permutation(acts):
                if len(chosen) < count and not any(_exclusive(str(act), c) for c in chosen):
                    chosen.append(str(act))
            for act in chosen:
                side = str(rng.choice(["L", "R"])) if (act not in names and act not in GAZE
                                                       and rng.random() < 0.3) else None
                for shape, w in action_weights(act, float(rng.uniform(*WEIGHT_RANGE)), side, names, rng).items():
                    expression[shape] = max(expression.get(shape, 0.0), w)
        width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
        focal = FOCAL_FACTOR * max(width, height)
        yaw, pitch, roll = rng.uniform(-1, 1, 3) * (YAW_MAX, PITCH_MAX, ROLL_MAX)
        rot = head_rotation(yaw, pitch, roll)
        distance = rng.uniform(*DISTANCE_RANGE)
        offset = rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * (width, height)
        target = np.array([offset[0] * distance / focal, -offset[1] * distance / focal, -distance])
        m2c = model_to_camera(rot, target - rot @ centre)
        light = {"azimuth": rng.uniform(-50, 50), "elevation": rng.uniform(10, 45), "energy": rng.uniform(12, 30),
                 "world": rng.uniform(0.1, 0.3), "backdrop_hue": rng.uniform(0, 1)}
        identity = rng.standard_normal(IDENTITY_COUNT) * IDENTITY_SCALE
        scene = Scene(name=f"c{index:03d}_{category}", category=category,
                      identity=tuple(np.round(identity, 6).tolist()),
                      expression={k: round(v, 4) for k, v in sorted(expression.items())},
                      yaw=round(float(yaw), 4), pitch=round(float(pitch), 4), roll=round(float(roll), 4),
                      model_to_camera=tuple(tuple(row) for row in np.round(m2c, 7).tolist()),
                      focal_px=round(focal, 4), image_size=(width, height),
                      light={k: round(float(v), 4) for k, v in light.items()})
        out.append((scene, SKINS[index % len(SKINS)]))
    return out


def _exclusive(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in EXCLUSIVE)


def skin_bundle(model_file: str | None, skin: str) -> Path:
    """The reconstruction of dev photo ``skin`` whose textures dress the renders (made once, then reused)."""
    bundle = CALIBRATION / "skins" / Path(skin).stem
    if not bundle.is_dir():
        from likeness.service.pipeline import Engine, ReconstructRequest

        print(f"reconstructing the skin bundle from {skin}", flush=True)
        bundle.parent.mkdir(parents=True, exist_ok=True)
        Engine().reconstruct(ReconstructRequest([str(DEV_IMAGES / skin)], str(bundle), SKIN_TEXTURE_SIZE,
                                                model_file, "skin"))
    return bundle


def render_missing(scenes: list[tuple[Scene, str]], model: HeadModel, model_file: str | None,
                   samples: int, folder: Path = CALIBRATION) -> None:
    """Render into ``folder`` the scenes whose PNG is missing or whose cached ground truth differs, one skin at
    a time."""
    todo = {}
    for scene, skin in scenes:
        png, truth = folder / f"{scene.name}.png", folder / f"{scene.name}.json"
        record = truth_record(scene, samples, Path(skin))
        if not png.is_file() or not truth.is_file() or json.loads(truth.read_text()) != record:
            todo.setdefault(skin, []).append((scene, png, truth, record))
    if not todo:
        return
    bundles = {skin: skin_bundle(model_file, skin) for skin in todo}
    import synth_render  # imports bpy: only when something is to render

    api = synth_render.install_addon()
    synth_render.install_addon = lambda: api  # install the add-on once; each Renderer reloads its skin
    start, done, total = time.perf_counter(), 0, sum(len(v) for v in todo.values())
    for skin, jobs in todo.items():
        renderer = synth_render.Renderer(bundles[skin], model, face_centre(model), samples)
        for scene, png, truth, record in jobs:
            png.unlink(missing_ok=True)
            renderer.render(scene, png)
            truth.write_text(json.dumps(record, indent=1))
            done += 1
            took = time.perf_counter() - start
            print(f"rendered {scene.name} with {Path(skin).stem} ({done}/{total}, {took / done:.1f} s each, "
                  f"{took / done * (total - done) / 60:.1f} min left)", flush=True)


# --- rays onto the true mesh ----------------------------------------------------------------------------------

def posed_mesh(model: HeadModel, scene: Scene) -> tuple[np.ndarray, np.ndarray, Camera]:
    """Camera-frame vertices (V,3) of the scene's true head (as rendered: eyeballs turned for gaze), their
    pixels (V,2), and the scene's camera."""
    verts = posed_vertices(model, scene)
    m2c = np.array(scene.model_to_camera)
    cam_verts = verts @ m2c[:3, :3].T + m2c[:3, 3]
    width, height = scene.image_size
    camera = Camera(scene.focal_px, (width / 2.0, height / 2.0), tuple(scene.image_size))
    return cam_verts, camera.project(cam_verts)[0], camera


def _neighbourhood(tri_map: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius: int) -> np.ndarray:
    """(N, (2r+1)²) triangle ids around each pixel (−1 outside the image or where empty)."""
    h, w = tri_map.shape
    offsets = np.arange(-radius, radius + 1)
    r = rows[:, None, None] + offsets[None, :, None]
    c = cols[:, None, None] + offsets[None, None, :]
    r, c = np.broadcast_arrays(r, c)
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    ids = np.where(inside, tri_map[np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)], -1)
    return ids.reshape(len(rows), -1)


def _perspective(bary2d: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Screen-space barycentrics (N,3) of corners at depths (N,3) → barycentrics on the 3D triangle."""
    w = bary2d / depth
    return w / w.sum(1, keepdims=True)


#: The visibility buffer is rasterised at this many samples per pixel side (ICT's triangles around the eyes and
#: nose are smaller than a pixel of these renders).
SUPERSAMPLE = 3
#: Candidate triangles per landmark from the nearest projected centroids (the buffer adds those seen nearby).
CANDIDATES = 48


def surface_hits(model: HeadModel, scene: Scene, points_px: np.ndarray,
                 snap_iod: float = SNAP_IOD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each landmark pixel (N,2) lies on the scene's true face surface.

    Returns triangle ids (N,) into ``model.triangles`` (−1: no hit), 3D barycentric weights (N,3), and how
    each was found (N,) int: 0 none, 1 the ray's nearest hit is face skin, 2 snapped to the nearest visible
    face skin in the image (the ray meets an eye, the mouth or teeth, or nothing).
    """
    cam_verts, px, camera = posed_mesh(model, scene)
    depth = -cam_verts[:, 2]
    tris = model.triangles
    kinds = np.array([m.kind for m in model.materials])[model.face_material[model.triangle_face]]
    shown = np.flatnonzero(~np.isin(kinds, INVISIBLE_KINDS))
    width, height = scene.image_size
    s = SUPERSAMPLE
    tri_map, _ = rasterize(px[tris[shown]] * s, width * s, height * s, depth=depth[tris[shown]])
    tri_map = np.where(tri_map >= 0, shown[np.maximum(tri_map, 0)], -1)
    is_face = np.all(tris < model.face_vertex_count, axis=1)
    n = len(points_px)
    out_tri, out_bary, how = np.full(n, -1), np.zeros((n, 3)), np.zeros(n, np.int8)
    rows = np.floor(points_px[:, 1] * s).astype(int)
    cols = np.floor(points_px[:, 0] * s).astype(int)
    every = np.arange(n)

    # 1. the nearest triangle containing the landmark's ray, among those seen around it and those nearby
    _, near = cKDTree(px[tris[shown]].mean(1)).query(points_px, k=CANDIDATES)
    cand = np.concatenate([_neighbourhood(tri_map, rows, cols, s), shown[near]], 1)
    t = tris[np.maximum(cand, 0)]  # (N,C,3)
    b2 = barycentric(np.repeat(points_px, cand.shape[1], 0), *(px[t[..., i]].reshape(-1, 2) for i in range(3)))
    b2 = b2.reshape(n, -1, 3)
    inside = (cand >= 0) & np.all(b2 >= -1e-6, -1)
    z = np.where(inside, 1.0 / np.maximum((b2 / depth[t]).sum(-1), 1e-12), np.inf)  # ray depth on each plane
    pick = z.argmin(1)
    hit_tri = cand[every, pick]
    direct = np.isfinite(z[every, pick]) & is_face[np.maximum(hit_tri, 0)]
    out_tri[direct] = hit_tri[direct]
    out_bary[direct] = _perspective(np.clip(b2[every, pick][direct], 0, None), depth[t[every, pick]][direct])
    how[direct] = 1

    # 2. the rest snap to the nearest face skin seen in the image (buffer samples), if near enough
    face_map = np.where((tri_map >= 0) & is_face[np.maximum(tri_map, 0)], tri_map, -1)
    rest = np.flatnonzero(~direct)
    if len(rest) and (face_map >= 0).any():
        iod = np.linalg.norm(points_px[263] - points_px[33])
        _, (near_r, near_c) = ndimage.distance_transform_edt(face_map < 0, return_indices=True)
        rr, cc = np.clip(rows[rest], 0, height * s - 1), np.clip(cols[rest], 0, width * s - 1)
        cand = _neighbourhood(face_map, near_r[rr, cc], near_c[rr, cc], s)
        t = tris[np.maximum(cand, 0)]
        p = np.repeat(points_px[rest], cand.shape[1], 0)
        b2, d2 = _closest_in_triangle(p, *(px[t[..., i]].reshape(-1, 2) for i in range(3)))
        b2, d2 = b2.reshape(len(rest), -1, 3), np.where(cand >= 0, d2.reshape(len(rest), -1), np.inf)
        pick = d2.argmin(1)
        k = np.arange(len(rest))
        ok = np.sqrt(d2[k, pick]) <= snap_iod * iod
        sel = rest[ok]
        out_tri[sel] = cand[k, pick][ok]
        out_bary[sel] = _perspective(b2[k, pick][ok], depth[t[k, pick]][ok])
        how[sel] = 2
    return out_tri, out_bary, how


# --- calibration ----------------------------------------------------------------------------------------------

def collect(model: HeadModel, scenes: list[tuple[Scene, str]]) -> dict[str, np.ndarray]:
    """Detect each render's landmarks and carry their surface hits to the rest mesh: per render (R) and
    landmark, the rest point (R,468,3; NaN where none), how it was found (see :func:`surface_hits`), and the
    scenes' names and yaw."""
    from likeness.capture.landmarks import LandmarkDetector

    detector = LandmarkDetector()
    neutral = model.neutral.astype(np.float64)
    rest = np.full((len(scenes), 468, 3), np.nan)
    how = np.zeros((len(scenes), 468), np.int8)
    detected = np.zeros(len(scenes), bool)
    for k, (scene, _) in enumerate(scenes):
        photo = load_photo(CALIBRATION / f"{scene.name}.png")
        try:
            found = detector.detect(photo.rgb, scene.name)
        except LikenessError as exc:
            print(f"{scene.name}: {exc.message}", flush=True)
            continue
        detected[k] = True
        tri, bary, how[k] = surface_hits(model, scene, found.points_px[:468])
        hit = tri >= 0
        rest[k, hit] = np.einsum("lk,lkd->ld", bary[hit], neutral[model.triangles[tri[hit]]])
    detector.close()
    return {"rest": rest, "how": how, "detected": detected, "yaw": np.array([s.yaw for s, _ in scenes]),
            "key": np.array(scenes_key(scenes))}


def scenes_key(scenes: list[tuple[Scene, str]]) -> str:
    """A digest of the scenes and their skins: which calibration set cached hits belong to."""
    return hashlib.sha256(json.dumps([(s.as_dict(), skin) for s, skin in scenes]).encode()).hexdigest()


def calibrate(model: HeadModel, rest: np.ndarray, yaw: np.ndarray, base: Correspondence,
              min_hits: int = MIN_HITS, oval: str = "frontal") -> tuple[Correspondence, np.ndarray, np.ndarray]:
    """The calibrated table from per-render rest points (R,468,3; NaN = no hit) of renders at ``yaw`` (R,):
    coordinate-wise medians projected onto the rest face surface.

    Face-oval landmarks mark the silhouette, which slides over the head as it turns (``likeness.capture.contour``
    follows it during the fit from the rest point): ``oval="frontal"`` calibrates them on the renders within
    :data:`FRONTAL_YAW` only (the rest point is then the outline of a frontal view), ``"all"`` on every render,
    ``"geometric"`` keeps their geometric entries. Landmarks with fewer than ``min_hits`` hits (or a quarter
    of the renders they are calibrated on) keep ``base``'s entry.
    Returns the table, the hit count per landmark, and which landmarks were recalibrated."""
    rest = rest.copy()
    used = np.broadcast_to(np.isfinite(rest[..., 0]).any(1)[:, None], rest.shape[:2]).copy()  # detected renders
    oval_ids = list(correspondence.FACE_OVAL)
    if oval == "frontal":
        far = np.abs(yaw) > FRONTAL_YAW
        used[np.ix_(far, oval_ids)] = False
    elif oval == "geometric":
        used[:, oval_ids] = False
    rest[~used] = np.nan
    hits = np.isfinite(rest[..., 0]).sum(0)
    enough = (hits >= min_hits) & (hits >= used.sum(0) // 4)
    median = np.nanmedian(np.where(enough[None, :, None], rest, 0.0), axis=0)
    table = correspondence.table_from_points(model, median)
    ids = np.where(enough[:, None], table.vertex_ids, base.vertex_ids)
    weights = np.where(enough[:, None], table.weights, base.weights)
    return Correspondence(vertex_ids=ids.astype(np.int32), weights=weights), hits, enough


def geometric_table(model: HeadModel) -> Correspondence:
    """The geometric starting point: the generator's table when MediaPipe's canonical mesh is at hand, else the
    kept copy of the table calibration replaced, else the committed table."""
    if CANONICAL.is_file():
        return build_correspondence(model, CANONICAL)
    print(f"{CANONICAL} not found: starting from the saved geometric table", flush=True)
    return read_table(GEOMETRIC_COPY) if GEOMETRIC_COPY.is_file() else load_table()


def read_table(path: Path) -> Correspondence:
    data = json.loads(Path(path).read_text())
    weights = np.asarray(data["weights"], np.float64)
    return Correspondence(vertex_ids=np.asarray(data["vertex_ids"], np.int32),
                          weights=weights / weights.sum(1, keepdims=True))


def same_table(a: Correspondence, b: Correspondence) -> bool:
    return bool((a.vertex_ids == b.vertex_ids).all() and np.allclose(a.weights, b.weights, atol=1e-5))


def region_of() -> dict[str, list[int]]:
    return metrics.landmark_regions()


def summarise(model: HeadModel, rest: np.ndarray, how: np.ndarray, base: Correspondence, new: Correspondence,
              hits: np.ndarray, enough: np.ndarray) -> dict:
    """Per-landmark and per-region statistics (mm): shift from the geometric table, spread of the hits."""
    neutral = model.neutral.astype(np.float64)
    old_p, new_p = base.points(neutral), new.points(neutral)
    shift = np.linalg.norm(new_p - old_p, axis=1) * 1000.0
    median = np.nanmedian(rest, axis=0)
    spread = np.nanmedian(np.linalg.norm(rest - median[None], axis=-1), axis=0) * 1000.0
    direct, snapped = (how == 1).sum(0), (how == 2).sum(0)
    regions = {name: {"shift_mm_mean": float(shift[ids].mean()), "shift_mm_max": float(shift[ids].max()),
                      "spread_mm_median": float(np.nanmedian(spread[ids])),
                      "snapped_share": float(snapped[ids].sum() / max(1, (direct + snapped)[ids].sum()))}
               for name, ids in region_of().items()}
    regions["all"] = {"shift_mm_mean": float(shift.mean()), "shift_mm_max": float(shift.max()),
                      "spread_mm_median": float(np.nanmedian(spread)),
                      "snapped_share": float(snapped.sum() / max(1, (direct + snapped).sum()))}
    return {"renders_detected": int(np.isfinite(rest[..., 0]).any(1).sum()),
            "recalibrated": int(enough.sum()), "kept": np.flatnonzero(~enough).tolist(), "regions": regions,
            "landmarks": [{"id": i, "hits": int(hits[i]), "direct": int(direct[i]), "snapped": int(snapped[i]),
                           "shift_mm": round(float(shift[i]), 3), "spread_mm": round(float(spread[i]), 3)}
                          for i in range(468)]}


def run_calibration(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    model_file = model_path(args.model)
    model = load_ict(model_file)
    scenes = calibration_scenes(model.expression_names, face_centre(model), args.scenes, args.seed)
    CALIBRATION.mkdir(parents=True, exist_ok=True)
    hits_file = CALIBRATION / "hits.npz"
    data = dict(np.load(hits_file, allow_pickle=False)) if args.reuse and hits_file.is_file() else {}
    if str(data.get("key", "")) != scenes_key(scenes):  # not reusing, or hits of another scene set
        render_missing(scenes, model, model_file, args.samples)
        rendered = time.perf_counter()
        data = collect(model, scenes)
        np.savez_compressed(hits_file, **data)
    else:
        rendered = time.perf_counter()
    base = geometric_table(model)
    table, hits, enough = calibrate(model, data["rest"], data["yaw"], base, args.min_hits, args.oval)
    stats = summarise(model, data["rest"], data["how"], base, table, hits, enough)
    stats["run"] = {"scenes": args.scenes, "seed": args.seed, "oval": args.oval, "samples": args.samples,
                    "skins": list(SKINS),
                    "render_s": round(rendered - start, 1), "calibrate_s": round(time.perf_counter() - rendered, 1)}
    (CALIBRATION / "calibration.json").write_text(json.dumps(stats, indent=1))
    save_table(table, CALIBRATION / correspondence.TABLE_FILE, description=DESCRIPTION)
    print(f"{stats['renders_detected']}/{len(scenes)} renders detected; {stats['recalibrated']} landmarks "
          f"recalibrated, kept {stats['kept']}")
    for name, r in stats["regions"].items():
        print(f"  {name:6s} shift {r['shift_mm_mean']:.2f} mm (max {r['shift_mm_max']:.2f}), hit spread "
              f"{r['spread_mm_median']:.2f} mm, snapped {100 * r['snapped_share']:.0f} %")
    if args.no_write:
        print(f"wrote {(CALIBRATION / correspondence.TABLE_FILE).relative_to(REPO)} only (--no-write)")
        return
    if not GEOMETRIC_COPY.is_file():
        shutil.copyfile(TABLE, GEOMETRIC_COPY)
        print(f"kept the replaced table as {GEOMETRIC_COPY.relative_to(REPO)}")
    save_table(table, TABLE, description=DESCRIPTION)
    print(f"wrote {TABLE.relative_to(REPO)} ({time.perf_counter() - start:.0f} s)")


DESCRIPTION = ("MediaPipe face-mesh landmark i -> point on the ICT head model surface: "
               "sum_j weights[i][j] * vertex[vertex_ids[i][j]]. Calibrated on Cycles renders of ICT heads by "
               "`bench/quality/calibrate_correspondence.py`, starting from `python -m likeness.model.correspondence`.")


# --- measuring on the benchmark's renders ---------------------------------------------------------------------

def benchmark_scenes(model: HeadModel, full: bool) -> list[Scene]:
    """The benchmark's scenes whose render and matching ground truth are cached."""
    out = []
    for scene in make_scenes(model.expression_names, face_centre(model), quick=not full):
        png, truth = BENCHMARK / f"{scene.name}.png", BENCHMARK / f"{scene.name}.json"
        if png.is_file() and truth.is_file() and \
                json.loads(truth.read_text())["scene"] == json.loads(json.dumps(scene.as_dict())):
            out.append(scene)
    return out


def consistency(model: HeadModel, scenes: list[Scene], tables: dict[str, Correspondence]) -> dict[str, dict]:
    """The benchmark's landmark_consistency (mean detected-vs-table distance, % IOD) for each table."""
    from likeness.capture.landmarks import LandmarkDetector
    from synthetic import truth_landmarks

    detector = LandmarkDetector()
    detected, ok = [], []
    for scene in scenes:
        try:
            detected.append(detector.detect(load_photo(BENCHMARK / f"{scene.name}.png").rgb).points_px[:468])
            ok.append(scene)
        except LikenessError:
            pass
    detector.close()
    return {name: metrics.landmark_consistency(np.array([truth_landmarks(model, corr, s) for s in ok]),
                                               np.array(detected))
            for name, corr in tables.items()}


def run_benchmark(label: str, table: Correspondence, full: bool) -> dict:
    """The benchmark's analysis (synthetic.py) with ``table`` in place of the committed one; results go to
    bench/results/calibration/benchmark_<label>_{quick,full}.* instead of the benchmark's own files."""
    import likeness.service.pipeline
    import synthetic

    saved = (likeness.service.pipeline.load_table, synthetic.load_table, synthetic.RESULTS, sys.argv)
    out = CALIBRATION / f"benchmark_{label}_{'full' if full else 'quick'}"
    out.mkdir(parents=True, exist_ok=True)
    likeness.service.pipeline.load_table = synthetic.load_table = lambda *_: table
    synthetic.RESULTS = out
    sys.argv = ["synthetic.py"] + ([] if full else ["--quick"])
    try:
        synthetic.main()
    finally:
        likeness.service.pipeline.load_table, synthetic.load_table, synthetic.RESULTS, sys.argv = saved
    return json.loads((out / "synthetic_metrics.json").read_text())


def run_measure(args: argparse.Namespace) -> None:
    model = load_ict(model_path(args.model))
    tables = {"geometric": read_table(GEOMETRIC_COPY) if GEOMETRIC_COPY.is_file() else geometric_table(model),
              "committed": load_table()}
    if same_table(tables["geometric"], tables["committed"]):
        del tables["committed"]  # not calibrated yet
    for path in args.table or []:
        tables[path.stem] = read_table(path)
    scenes = benchmark_scenes(model, args.full)
    print(f"{len(scenes)} benchmark renders ({'full set' if args.full else '--quick subset'}, cached)")
    result = {"scenes": len(scenes), "landmarks_vs_truth": consistency(model, scenes, tables)}
    keys = ("all", "eyes", "brows", "lips", "nose", "oval", "eye_aperture_bias")
    print(f"{'table':16s} " + " ".join(f"{k:>8s}" for k in keys) + "   (% IOD; aperture bias: ratio)")
    for name, c in result["landmarks_vs_truth"].items():
        print(f"{name:16s} " + " ".join(f"{c[k]:8.3f}" for k in keys))
    if args.benchmark:
        summaries = {name: run_benchmark(name, corr, args.full)["summary"] for name, corr in tables.items()}
        result["benchmark"] = summaries
        keys = ("on_shape_error", "leaked_mean", "auc_mean", "side_accuracy", "vertex_median_mm",
                "rotation_mean_deg", "expression_mae")
        print(f"{'table':16s} " + " ".join(f"{k[:12]:>12s}" for k in keys))
        for name, s in summaries.items():
            print(f"{name:16s} " + " ".join(f"{s[k]:12.3f}" for k in keys))
    path = CALIBRATION / f"measure_{'full' if args.full else 'quick'}.json"
    CALIBRATION.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="ICT model .npz (default: ../shared, $LIKENESS_ICT_MODEL, installed)")
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--scenes", type=int, default=80, help="calibration scenes to render and use")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument("--min-hits", type=int, default=MIN_HITS)
    parser.add_argument("--oval", choices=("frontal", "all", "geometric"), default="frontal",
                        help="which renders calibrate the face-oval (silhouette) landmarks (see calibrate())")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the landmark hits of the last run (bench/results/calibration/hits.npz)")
    parser.add_argument("--no-write", action="store_true",
                        help="write the table under bench/results/calibration/ only, not the committed one")
    measure = sub.add_parser("measure", help="score the geometric and committed tables on the benchmark renders")
    measure.add_argument("--full", action="store_true", help="all cached benchmark renders, not the --quick subset")
    measure.add_argument("--benchmark", action="store_true", help="also run the benchmark's analysis per table")
    measure.add_argument("--table", type=Path, action="append",
                         help="also score this table file (e.g. a --no-write result); repeatable")
    args = parser.parse_args()
    if args.command == "measure":
        run_measure(args)
    else:
        run_calibration(args)


if __name__ == "__main__":
    main()
