"""The learned expression encoder (likeness.learned): features, skins, renders, training, checkpoints, the engine.

Checkpoints here are tiny networks trained in the test on made-up data, written in the real format by the real
``save``; the real renderer, MediaPipe and ICT model are used where a test needs them.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from likeness.errors import BadInput
from likeness.model.geometry import head_rotation
from likeness.learned import features as feats
from likeness.learned.skins import SkinPainter, skin_seeds

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _faces(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,478,3) landmark sets: a random base shape with small per-face changes."""
    base = rng.normal(0, 1, (478, 3))
    return base + rng.normal(0, 0.02, (n, 478, 3))


def test_the_face_crop_follows_the_face():
    """A picture moved, scaled and turned in the image gives the same crop (up to resampling)."""
    from PIL import Image

    rng = np.random.default_rng(5)
    template = rng.uniform(-0.8, 0.8, (468, 2))
    picture = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(picture).resize((400, 400), Image.Resampling.BILINEAR))
    canvas = np.zeros((600, 600, 3), np.uint8)
    canvas[100:500, 100:500] = big
    points = template * 120 + 300  # the template's frame: x right, y down, about 3.3 units on the picture
    a = feats.face_crop(canvas, points, template)
    turned = np.asarray(Image.fromarray(canvas).rotate(-20, center=(300, 300), resample=Image.Resampling.BILINEAR))
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    b = feats.face_crop(turned, (points - 300) @ rot.T + 300, template)
    assert a.shape == (feats.CROP, feats.CROP, 3) and a.dtype == np.uint8
    inner = slice(30, 98)
    assert np.abs(a[inner, inner].astype(int) - b[inner, inner]).mean() < 12


def test_features_ignore_position_size_and_rotation():
    rng = np.random.default_rng(0)
    face = _faces(1, rng)[0]
    template = feats.mean_template(_faces(20, rng))
    assert np.isclose(np.linalg.norm(template[33] - template[263]), 1.0)
    scores = feats.score_vector({"jawOpen": 0.5})
    moved = 3.7 * face @ head_rotation(20, -10, 5).T + [40, -7, 3]
    a = feats.encoder_features(face[:, :2] * [1, -1], -face[:, 2], scores, template)
    b = feats.encoder_features(moved[:, :2] * [1, -1], -moved[:, 2], scores, template)
    shape, rotation, scores_at = feats.SHAPE_COLS, feats.ROTATION_COLS, feats.SCORE_COLS
    assert (shape.start, shape.stop, rotation.stop, scores_at.stop) == (0, 478 * 3, 478 * 3 + 9, feats.FEATURES)
    assert rotation.start == shape.stop and scores_at.start == rotation.stop
    assert a.shape == (feats.FEATURES,) and np.allclose(a[shape], b[shape], atol=1e-5)
    assert not np.allclose(a[rotation], b[rotation])  # the rotation comes along
    assert a[-1] == 1.0 and a[scores_at][17] == np.float32(0.5)  # jawOpen is ARKit's 18th shape
    assert feats.score_vector(None).sum() == 0


def test_skin_families_are_apart_and_skins_repeat(ict):
    assert not set(skin_seeds(100, "train")) & set(skin_seeds(100, "heldout"))
    painter = SkinPainter(ict)
    a, b = painter.paint(4), painter.paint(4)
    assert np.array_equal(a.albedo, b.albedo) and a.albedo.shape == (ict.vertex_count, 3)
    assert not np.array_equal(a.albedo, painter.paint(6).albedo)
    assert a.albedo.min() > 0 and a.albedo.max() < 1
    lips, skin = a.albedo[painter.lip], a.albedo[painter.front & ~painter.lip & (painter.brow > 1.5)]
    assert (lips[:, 0] / lips[:, 1]).mean() > (skin[:, 0] / skin[:, 1]).mean()  # lips are redder


def test_detailed_skins_have_darker_brows_and_lashes(ict):
    painter = SkinPainter(ict)
    brow = painter.front & (painter.brow < 0.2) & painter.brow_span
    cheek = painter.front & (painter.cheek < 1.0)
    lid = painter.front & (painter.upper_lid < 0.05)
    contrast = {False: [], True: []}
    for detail in (False, True):
        for seed in range(0, 40, 2):
            albedo = painter.paint(seed, detail=detail).albedo.mean(1)
            contrast[detail].append((albedo[brow].mean() / albedo[cheek].mean(), albedo[lid].mean() / albedo[cheek].mean()))
    plain, detailed = np.median(contrast[False], 0), np.median(contrast[True], 0)
    assert detailed[0] < plain[0] - 0.1 and detailed[1] < plain[1] - 0.1
    assert np.array_equal(painter.paint(3, "heldout").albedo, painter.paint(3, "heldout", detail=False).albedo)


def test_photo_eyes_darken_the_lash_line_and_irises_and_leave_the_rest_of_the_skin(ict):
    painter = SkinPainter(ict)
    lid = painter.front & (painter.upper_lid < 0.05)
    eye_zone = painter.eyeball | (painter.front & ((painter.upper_lid < 0.3) | (painter.lower_lid < 0.12)))
    lid_ratio, iris = [], []
    for seed in range(0, 40, 2):
        plain, photo = painter.paint(seed, detail=True), painter.paint(seed, detail=True, eyes=True)
        assert np.array_equal(plain.albedo[~eye_zone], photo.albedo[~eye_zone])  # the rest of the skin is kept
        assert np.array_equal(plain.gloss, photo.gloss)
        lid_ratio.append(photo.albedo[lid].mean() / plain.albedo[lid].mean())
        iris.append((photo.albedo[painter.iris].mean(), plain.albedo[painter.iris].mean()))
        sclera = painter.eyeball & ~painter.iris
        assert photo.albedo[sclera].mean() < plain.albedo[sclera].mean()  # off-white, not paper
        white = painter.paint(seed, detail=True, eyes=2)  # the same photo eyes with the sclera left white
        assert np.array_equal(white.albedo[sclera], plain.albedo[sclera])
        assert np.array_equal(white.albedo[~sclera], photo.albedo[~sclera])
    assert max(lid_ratio) < 1.0 + 1e-6 and np.median(lid_ratio) < 0.5
    photo_iris, plain_iris = np.median(iris, 0)
    assert photo_iris < plain_iris


def test_texture_albedo_samples_each_vertex_of_a_textured_material_at_its_uv(ict):
    from likeness.appearance.light import srgb_to_linear
    from likeness.learned.photoskin import texture_albedo

    face = next(i for i, m in enumerate(ict.materials) if m.name == "skin_face")
    size = 256
    ramp = np.linspace(0.0, 1.0, size)
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = np.round(255 * ramp)[None, :]  # red grows with u
    image[..., 1] = np.round(255 * ramp[::-1])[:, None]  # green grows with v (row 0 is v = 1)
    image[..., 2] = 128
    albedo = texture_albedo(ict.faces, ict.faces_uv, ict.uv, ict.face_material, {face: image}, ict.vertex_count)
    on_face = np.zeros(ict.vertex_count, bool)
    on_face[ict.faces[ict.face_material == face].ravel()] = True
    on_face[-1] &= ict.faces.min() >= 0  # padding (-1) does not mark the last vertex
    assert np.isfinite(albedo[on_face]).all() and np.isnan(albedo[~on_face]).all()
    assert np.allclose(albedo[on_face, 2], srgb_to_linear(np.array(128 / 255)), atol=1e-6)
    # each vertex's mean corner UV, against what it read (sRGB-encoded ramps: compare in sRGB)
    rows = ict.face_material == face
    corners, coords = ict.faces[rows].ravel(), ict.faces_uv[rows].ravel()
    keep = (corners >= 0) & (coords >= 0)
    count = np.bincount(corners[keep], minlength=ict.vertex_count)
    mean_uv = np.stack([np.bincount(corners[keep], ict.uv[coords[keep], k], ict.vertex_count) for k in (0, 1)], 1)
    single = on_face & (count > 0)
    mean_uv = mean_uv[single] / count[single, None]
    srgb = lambda x: np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.abs(x) ** (1 / 2.4) - 0.055)  # noqa: E731
    assert np.corrcoef(srgb(albedo[single, 0]), mean_uv[:, 0])[0, 1] > 0.999
    assert np.corrcoef(srgb(albedo[single, 1]), mean_uv[:, 1])[0, 1] > 0.999


def test_photo_skins_dress_half_of_the_faces_with_the_photos_detail_at_the_skins_tone(ict):
    painter = SkinPainter(ict)
    v = painter.v
    photo = np.column_stack([0.3 + 0.1 * np.sin(v[:, 0]), 0.2 + 0.05 * np.cos(v[:, 1]), 0.15 + 0.0 * v[:, 2]])
    hole = painter.front & (np.linalg.norm(v - painter.lm[30], axis=1) < 1.5)  # round the nose tip: no photo there
    photo[hole] = np.nan
    skin_region = painter.front & (painter.region == 0)
    deep = skin_region & ~hole & (painter.face_inset > 1.2) \
        & (np.linalg.norm(v - painter.lm[30], axis=1) > 2.7)  # a centimetre inside every edge of the photo
    used = 0
    for seed in skin_seeds(40, "train"):
        plain = painter.paint(seed, detail=True, eyes=2)
        dressed = painter.paint(seed, detail=True, eyes=2, photo=photo)
        assert np.array_equal(plain.gloss, dressed.gloss)
        if np.array_equal(plain.albedo, dressed.albedo):
            continue
        used += 1
        outside = ~(skin_region & ~hole) & ~painter.front  # the head, eyes, mouth: as painted
        assert np.array_equal(plain.albedo[outside], dressed.albedo[outside])
        assert np.array_equal(plain.albedo[hole], dressed.albedo[hole])
        lids = painter.front & ((painter.upper_lid < 0.3) | (painter.lower_lid < 0.12))  # photo eyes' lash lines
        ratio = dressed.albedo[deep & ~lids] / photo[deep & ~lids]
        ratio[dressed.albedo[deep & ~lids] >= 0.95 - 1e-6] = np.nan  # clipped to the skins' brightest albedo
        assert (np.nanstd(ratio, 0) / np.nanmean(ratio, 0) < 1e-4).all()  # the photo's detail, scaled to the tone
    assert 10 <= used <= 30  # PHOTO_SHARE = 0.5 of 40


def test_the_astronauts_reconstruction_gives_a_photo_skin_with_her_lash_lines_where_the_models_are(ict, ict_path,
                                                                                                   tmp_path):
    from likeness.learned.photoskin import photo_bundle, vertex_albedo

    bundle = photo_bundle(tmp_path, str(ict_path))  # the real `likeness demo`, in a subprocess
    made = (bundle / "manifest.json").stat().st_mtime_ns
    assert photo_bundle(tmp_path, str(ict_path)) == bundle and (bundle / "manifest.json").stat().st_mtime_ns == made
    albedo = vertex_albedo(bundle, ict.vertex_count)
    painter = SkinPainter(ict)
    seen = np.isfinite(albedo).all(1)
    assert not seen[painter.eyeball].any()  # untextured materials
    share = seen[painter.front & (painter.region == 0)].mean()
    assert 0.5 < share < 0.98  # most of the face, less what her hair mask covers
    luminance = albedo @ np.array([0.2126, 0.7152, 0.0722])
    lids = painter.front & (painter.upper_lid < 0.1) & seen  # the upper lids' edges: lashes and their shadow
    cheeks = painter.front & (painter.cheek < 1.5) & seen
    assert np.median(luminance[lids]) < 0.6 * np.median(luminance[cheeks])  # measured 0.28 against 0.65
    with pytest.raises(BadInput):
        vertex_albedo(bundle, ict.vertex_count + 1)


def test_photo_scenes_keep_the_scene_and_add_studio_lights_and_plain_backdrops(ict):
    from likeness.learned.scenes import draw_scene

    centre = ict.neutral[ict.landmarks_68].mean(0)
    studio = plain = 0
    for i in range(120):
        a = draw_scene(ict.expression_names, 60, centre, [0, 2], np.random.default_rng([5, i]))
        b = draw_scene(ict.expression_names, 60, centre, [0, 2], np.random.default_rng([5, i]), photo=True)
        assert np.array_equal(a.expression, b.expression) and np.array_equal(a.identity, b.identity)
        assert np.array_equal(a.rotation, b.rotation) and a.camera == b.camera
        assert (a.skin_seed, a.occluder, a.plain) == (b.skin_seed, b.occluder, False)
        studio += b.light.wrap != a.light.wrap
        plain += b.plain
    assert 25 < studio < 75 and 20 < plain < 65  # 40 % and 35 % of 120


def test_occlusion_darkens_the_eyes_corners_more_than_the_cheeks(ict):
    from likeness.model.camera import Camera
    from likeness.learned.render import HeadRenderer, Lighting

    centre = ict.neutral[ict.landmarks_68].mean(0)
    trans = np.array([0.0, 0.0, -0.5]) - centre
    camera = Camera(1400.0, (200.0, 200.0), (400, 400))
    light = Lighting(np.array([0.0, 0.3, 0.95]), np.full(3, 0.6), np.full(3, 0.6), 0.0, 0.8)
    renderer, skin = HeadRenderer(ict), SkinPainter(ict).paint(0)
    images = [renderer.render(ict.vertices(), skin, np.eye(3), trans, camera, light, np.random.default_rng(1),
                              occlusion=on).astype(float) for on in (False, True)]
    px, _ = camera.project(ict.vertices()[ict.landmarks_68] + trans)
    ratio = (images[1] + 1) / (images[0] + 1)
    assert ratio.max() < 1.1  # nothing lit more (up to JPEG and rounding)

    def at(points):  # mean ratio in 5 × 5 px around pixel positions
        return np.mean([ratio[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].mean() for x, y in points])

    corners = px[[39, 42]]  # the eyes' inner corners, beside the nose's bridge
    cheeks = (px[[1, 15]] + px[[31, 35]]) / 2
    assert at(corners) < at(cheeks) - 0.05


def test_creases_darken_only_where_the_expression_folds_the_skin(ict):
    painter = SkinPainter(ict)
    skin = painter.paint(2, detail=True)
    names = ict.expression_names
    frown = np.zeros(len(names))
    frown[[names.index("browDown_L"), names.index("browDown_R")]] = 1.0
    rest, posed = ict.vertices(), ict.vertices(expression=frown)
    creased = painter.crease(skin, rest, posed, 0.6, np.random.default_rng(0))
    darker = creased.albedo.sum(1) < 0.95 * skin.albedo.sum(1)  # noticeably darker
    assert darker.any() and np.all(creased.albedo <= skin.albedo + 1e-7)
    assert np.all(painter.v[darker, 1] > painter.lm[33, 1])  # a frown folds nothing below the nose …
    assert painter.brow[darker].mean() < 2.0  # … and a frown folds the skin near the brows
    unchanged = painter.crease(skin, rest, rest, 0.6, np.random.default_rng(0))
    assert np.array_equal(unchanged.albedo, skin.albedo)
    assert painter.crease(skin, rest, posed, 0.0, np.random.default_rng(0)) is skin


def test_expressions_keep_the_rig_rules(ict):
    from likeness.learned.scenes import EXCLUSIVE, KINDS, draw_expression

    names = ict.expression_names
    index = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(400):
        w, kind = draw_expression(names, rng)
        kinds.add(kind)
        assert w.shape == (len(names),) and w.min() >= 0 and w.max() <= 1
        assert w[index["mouthClose"]] <= w[index["jawOpen"]]
        assert all(w[index[a]] == 0 or w[index[b]] == 0 for a, b in EXCLUSIVE)
    assert kinds == set(KINDS)


def test_a_render_is_a_face_mediapipe_finds_where_the_head_is(ict):
    from likeness.model.camera import Camera
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.render import HeadRenderer, Lighting

    rot = head_rotation(15, 5, 0)
    centre = ict.neutral[ict.landmarks_68].mean(0)
    trans = np.array([0.0, 0.0, -0.6]) - rot @ centre
    camera = Camera(700.0, (256.0, 256.0), (512, 512))
    light = Lighting(np.array([0.3, 0.4, 0.87]), np.ones(3), np.full(3, 0.3), 0.2, 0.2)
    verts = ict.vertices()
    rgb = HeadRenderer(ict).render(verts, SkinPainter(ict).paint(0), rot, trans, camera, light,
                                   np.random.default_rng(0))
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    found = LandmarkDetector(max_faces=1).detect(rgb)
    nose_px, _ = camera.project((verts[ict.landmarks_68[30]] @ rot.T + trans)[None])
    iod = np.linalg.norm(found.points_px[33] - found.points_px[263])
    assert np.linalg.norm(found.points_px[1] - nose_px[0]) < 0.25 * iod
    # the true face points (a training target) lie where MediaPipe finds them, to its scatter
    from likeness.learned.dataset import face_points
    from likeness.learned.trainset import landmark_residuals
    from likeness.model.correspondence import load_table

    seen = feats.landmarks_3d(found.points_px, found.depth_px)
    template = feats.mean_template(seen[None])  # inter-ocular distance 1

    def error(true: np.ndarray) -> float:
        residual = landmark_residuals(seen[None], true[None], template).reshape(468, 3)
        return float(np.linalg.norm(residual[:, :2], axis=-1).mean())

    assert error(face_points(load_table(), verts, rot, trans, camera)) < 0.05  # inter-ocular distances (0.018)
    assert error(face_points(load_table(), verts, head_rotation(25, 5, 0), trans, camera)) > 0.1  # 10° off (0.18)


@needs_torch
def test_loss_counts_only_what_is_wrong():
    from likeness.learned.network import weight_loss

    target = torch.tensor([[0.0, 0.5, 1.0]])
    assert float(weight_loss(torch.tensor([[-3.0, 0.5, 1.0]]), target)) == 0.0
    assert float(weight_loss(torch.tensor([[0.2, 0.5, 1.0]]), target)) == pytest.approx(0.2 ** 2 / 3)
    assert float(weight_loss(torch.tensor([[0.0, 0.2, 1.0]]), target)) == pytest.approx(0.3 ** 2 / 3)


def _toy(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features whose first columns carry the 53 weights (plus noise), like an easy version of the real task,
    with crops whose brightness carries the first weight."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random((n, 53)) < 0.15, rng.uniform(0.2, 1.0, (n, 53)), 0.0).astype(np.float32)
    x = rng.normal(0, 0.05, (n, feats.FEATURES)).astype(np.float32)
    x[:, :53] += y
    crops = np.broadcast_to((y[:, 0] * 200 + 20).astype(np.uint8)[:, None, None, None],
                            (n, feats.CROP, feats.CROP, 3)).copy()
    return x, crops, y, rng.uniform(-30, 30, (n, 3)).astype(np.float32)


def _checkpoint(path: Path, names: tuple[str, ...], epochs: int = 1, template: np.ndarray | None = None) -> Path:
    from likeness.learned.train import save, train

    x, crops, y, angles = _toy(64)
    net = train(x, crops, y, angles, epochs, seed=1, width=32, blocks=1, log=lambda *_: None)
    rng = np.random.default_rng(1)
    save(net, feats.mean_template(_faces(5, rng)) if template is None else template, rng.normal(0, 1, (468, 2)),
         names, path, {"width": 32, "blocks": 1})
    return path


@needs_torch
def test_training_learns_and_repeats_itself():
    from likeness.learned.network import centre
    from likeness.learned.train import train

    x, crops, y, angles = _toy(256)
    before = train(x, crops, y, angles, 0, seed=1, width=32, blocks=1, log=lambda *_: None)
    nets = [train(x, crops, y, angles, 10, seed=1, width=32, blocks=1, log=lambda *_: None) for _ in range(2)]

    def error(net) -> float:
        """Mean absolute error where a shape is on (predicting zeros scores the mean weight, about 0.6)."""
        with torch.no_grad():
            raw = net(torch.from_numpy(x), centre(torch.from_numpy(crops)))[0]
        on = y > 0
        return float((raw.clamp(0, 1).numpy() - y)[on].__abs__().mean())

    assert error(nets[0]) < 0.8 * min(error(before), float(y[y > 0].mean()))
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)


@needs_torch
def test_a_checkpoint_loads_and_predicts(tmp_path, ict):
    from likeness.learned.runtime import ExpressionEncoder

    path = _checkpoint(tmp_path / "enc.safetensors", ict.expression_names)
    encoder = ExpressionEncoder(path, ict.expression_names, "cpu")
    x, crops, _, _ = _toy(4)
    weights, angles = encoder.predict(x, crops)
    assert weights.shape == (4, 53) and weights.min() >= 0 and weights.max() <= 1 and angles.shape == (4, 3)
    assert encoder.template.shape == (478, 3) and encoder.crop_template.shape == (468, 2)


@needs_torch
def test_the_encoder_reads_a_face_and_its_mirror_image_alike(tmp_path, ict):
    """The product reads each face and its mirror image and averages them, so a face seen in a mirror reads as the
    face with left and right swapped, which one network alone does not (it was trained on a few random faces)."""
    from likeness.learned.mirror import Mirror
    from likeness.learned.runtime import ExpressionEncoder, read_faces

    template, _ = _symmetric_template(np.random.default_rng(4))
    path = _checkpoint(tmp_path / "enc.safetensors", ict.expression_names, template=template)
    both, alone = (ExpressionEncoder(path, ict.expression_names, "cpu", mirrored=m) for m in (True, False))
    mirror = Mirror(both.template, ict.expression_names)
    x, crops, _, _ = _toy(6, seed=3)
    x[:, feats.ROTATION_COLS] = np.stack([head_rotation(*r).ravel() for r in np.random.default_rng(3).uniform(-20, 20,
                                                                                                            (6, 3))])
    seen, mirrored = (x, crops), (mirror.features(x), mirror.crops(crops))

    def swapped(reading):
        return mirror.weights(reading[0]), mirror.angles(reading[1])

    for encoder, tolerance in ((both, 1e-4), (alone, None)):
        a, b = swapped(encoder.predict(*seen)), encoder.predict(*mirrored)
        if tolerance is None:  # one network alone favours a side
            assert np.abs(a[0] - b[0]).max() > 0.01
        else:
            assert np.allclose(a[0], b[0], atol=tolerance) and np.allclose(a[1], b[1], atol=1e-2)
    # the averaged reading is the mean of the network's two outputs (clamped after), in one batch
    from likeness.learned.network import ANGLE_UNIT_DEG, centre

    with torch.no_grad():
        plain, flipped = ([t.numpy().astype(np.float64) for t in alone.net(torch.from_numpy(f),
                                                                             centre(torch.from_numpy(c.copy())))]
                          for f, c in (seen, mirrored))
    weights, angles = read_faces(both.net, *seen, mirror)
    mean = (plain[0] + mirror.weights(flipped[0])) / 2
    assert (mean < 0).any() and (mean > 0).any()
    assert np.allclose(weights, np.clip(mean, 0, 1), atol=1e-5)
    assert np.allclose(angles, (plain[1] + mirror.angles(flipped[1])) / 2 * ANGLE_UNIT_DEG, atol=1e-3)
    assert np.allclose(both.predict(*seen)[0], weights)


@needs_torch
def test_bad_checkpoints_are_refused_without_running_them(tmp_path, ict):
    from likeness.learned.runtime import ExpressionEncoder

    names = ict.expression_names
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickle.dumps(Payload()))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    other = _checkpoint(tmp_path / "other.safetensors", names)
    for path, says in ((pickled, "not a valid checkpoint"), (garbage, "not a valid checkpoint"),
                       (tmp_path / "missing.safetensors", "does not exist")):
        with pytest.raises(BadInput, match=says):
            ExpressionEncoder(path, names, "cpu")
    with pytest.raises(BadInput, match="other expression shapes"):
        ExpressionEncoder(other, names[::-1], "cpu")
    assert not marker.exists()


@needs_torch
def test_the_engine_uses_the_encoder_as_evidence(tmp_path, ict_path, ict, monkeypatch):
    from likeness.capture.images import load_photo
    from likeness.service.pipeline import Engine
    from skimage import data
    from PIL import Image

    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo_path)
    photo = load_photo(photo_path)
    monkeypatch.setenv("LIKENESS_EXPRESSION_ENCODER", str(_checkpoint(tmp_path / "enc.safetensors",
                                                                       ict.expression_names)))
    learned, _ = Engine(use_blendshapes=False).analyse([photo], str(ict_path))
    monkeypatch.setenv("LIKENESS_EXPRESSION_ENCODER", "off")
    plain, _ = Engine(use_blendshapes=False).analyse([photo], str(ict_path))
    monkeypatch.delenv("LIKENESS_EXPRESSION_ENCODER")
    default, _ = Engine(use_blendshapes=False).analyse([photo], str(ict_path))  # photos: the shipped encoder
    assert "expression_encoder" in learned.photos[0].evidence
    assert "expression_encoder" not in plain.photos[0].evidence
    assert not np.allclose(learned.photos[0].expression, plain.photos[0].expression)
    from likeness.learned.runtime import SHIPPED
    assert ("expression_encoder" in default.photos[0].evidence) == SHIPPED.is_file()


def test_the_core_runs_without_torch(ict_path):
    """With torch unimportable the backend still fits (no encoder) and imports nothing learned at start-up."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import likeness.service.cli, likeness.service.pipeline, likeness.capture.track, likeness.service.serve\n"
            "assert not any(m.startswith('likeness.learned') for m in sys.modules), 'learned imported early'\n"
            "from likeness.service.pipeline import Engine\n"
            f"engine = Engine(); model, _ = engine.model({str(ict_path)!r})\n"
            "assert engine.encoder(model) is None\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_torch_builds_fit_the_machine():
    from likeness.learned.setup_torch import CPU_BUILD, candidates

    assert candidates("Linux", nvidia=False)[0][0] == CPU_BUILD
    assert candidates("Linux", nvidia=True) == [["torch", "safetensors"]]
    assert candidates("Darwin", nvidia=False) == [["torch", "safetensors"]]


@needs_torch
def test_the_shipped_encoder_fits_the_head_model(ict):
    """The checkpoint in the package loads for ICT's 53 shapes and reads a render's open jaw as more open than the
    same head's closed one."""
    from likeness.model.camera import Camera
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.render import HeadRenderer, Lighting
    from likeness.learned.runtime import SHIPPED, ExpressionEncoder

    if not SHIPPED.is_file():
        pytest.skip("no shipped checkpoint")
    encoder = ExpressionEncoder(SHIPPED, ict.expression_names, "cpu")
    rot, centre = head_rotation(0, 0, 0), ict.neutral[ict.landmarks_68].mean(0)
    trans = np.array([0.0, 0.0, -0.6]) - rot @ centre
    camera = Camera(700.0, (256.0, 256.0), (512, 512))
    light = Lighting(np.array([0.2, 0.3, 0.93]), np.ones(3), np.full(3, 0.3), 0.2, 0.2)
    jaw = ict.expression_names.index("jawOpen")
    reads = []
    for weight in (0.0, 0.9):
        expression = np.zeros(len(ict.expression_names))
        expression[jaw] = weight
        rgb = HeadRenderer(ict).render(ict.vertices(expression=expression), SkinPainter(ict).paint(1, "heldout"), rot,
                                       trans, camera, light, np.random.default_rng(2))
        found = LandmarkDetector(max_faces=1).detect(rgb)
        features, crop = encoder.inputs(rgb, found.points_px, found.depth_px, feats.score_vector(None))
        reads.append(encoder.predict(features[None], crop[None])[0][0, jaw])
    assert reads[1] > reads[0] + 0.3


def test_the_pose_prior_pulls_the_rotation_toward_it(ict):
    """With only a rotation prior to go on (no landmark weight), the fit turns the head to the prior."""
    from dataclasses import replace

    from likeness.model.camera import Camera
    from likeness.model.correspondence import load_table
    from likeness.capture.fit import FitSettings, LandmarkBasis, Observation, fit_landmarks

    settings = FitSettings(sliding_contour=False, pose_prior=1e6)
    full = LandmarkBasis.build(ict, load_table(), settings)
    basis = replace(full, weights=full.weights * 1e-6)
    rot, centre = head_rotation(10, 0, 0), basis.base.mean(0)
    trans = np.array([0.0, 0.0, -0.6]) - rot @ centre
    camera = Camera(700.0, (256.0, 256.0), (512, 512))
    px, depth = camera.project(basis.base @ rot.T + trans)
    prior = head_rotation(10, -8, 4)
    fit = fit_landmarks(basis, [Observation(px, depth - depth.mean(), camera, rotation_prior=prior)],
                        replace(settings, pose_prior_pitch=1e6))
    assert np.degrees(np.arccos(np.clip((np.trace(fit.photos[0].rotation @ prior.T) - 1) / 2, -1, 1))) < 0.5
    # with the landmarks at their weight, a prior on the pitch alone (the turn about the camera's horizontal axis)
    # moves the pitch and leaves the yaw and roll to the landmarks
    from likeness.model.geometry import head_angles

    fit = fit_landmarks(full, [Observation(px, depth - depth.mean(), camera, rotation_prior=prior)],
                        replace(settings, pose_prior=0.0, pose_prior_pitch=1e8))
    yaw, pitch, roll = head_angles(fit.photos[0].rotation)
    assert abs(pitch + 8) < 1.0 and abs(yaw - 10) < 1.0 and abs(roll) < 1.0  # the landmarks' yaw and roll kept


def _symmetric_template(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A (478,3) landmark set symmetric about a tilted plane, and its true mirror permutation: 28 points on the
    plane, 220 pairs (33 ↔ 263 among them), two irises whose outline points are listed in mirrored order."""
    perm = np.arange(478)
    others = np.setdiff1d(np.arange(468), [33, 263])
    rng.shuffle(others)
    pairs = [(33, 263)] + list(zip(others[28:247], others[247:466]))
    points = np.zeros((478, 3))
    points[others[:28]] = rng.normal(0, 1, (28, 3)) * [0, 1, 1]
    for a, b in pairs:
        points[a] = rng.normal(0, 1, 3)
        points[a, 0] = abs(points[a, 0]) + (2.2 if a == 33 else 0.2)
        points[b] = points[a] * [-1, 1, 1]
        perm[a], perm[b] = b, a
    ring = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [-0.1, 0, 0], [0, -0.1, 0]])
    points[468:473] = [0.9, 0.2, 0.5] + ring
    points[473:478] = [-0.9, 0.2, 0.5] + ring  # listed in the same turning order, so mirrored it runs back
    perm[468:473] = 473 + np.array([0, 3, 2, 1, 4])
    perm[473:478] = 468 + np.array([0, 3, 2, 1, 4])
    turn = head_rotation(20, -10, 15)
    return points @ turn.T + [0.3, -0.2, 0.1], perm


def test_the_mirror_finds_the_templates_symmetry_and_undoes_itself():
    from likeness.learned.mirror import Mirror, twin

    rng = np.random.default_rng(4)
    template, perm = _symmetric_template(rng)
    mirror = Mirror(template, ("eyeBlink_L", "eyeBlink_R", "jawOpen", "jawLeft", "jawRight", "mouthLeft",
                               "mouthRight", "browInnerUp_L", "browInnerUp_R"))
    assert np.array_equal(mirror.perm, perm)
    assert np.linalg.det(mirror.reflect) == pytest.approx(-1.0)
    assert mirror.expression.tolist() == [1, 0, 2, 4, 3, 6, 5, 8, 7]
    assert twin("eyeBlinkLeft") == "eyeBlinkRight" and twin("cheekPuff") == "cheekPuff"
    # a face (the template's shape, smiling on one side) turned in a photo, and the same photo mirrored
    shape = template + rng.normal(0, 0.02, template.shape)
    seen = shape @ head_rotation(25, 5, 10).T * 40  # x right, y up, z toward the camera (pixels)
    photos = (seen, seen[perm] * [-1, 1, 1])
    scores = (feats.score_vector({"eyeBlinkLeft": 0.8}), feats.score_vector({"eyeBlinkRight": 0.8}))
    x = np.stack([feats.encoder_features(p[:, :2] * [1, -1], -p[:, 2], sc, template)
                  for p, sc in zip(photos, scores)]).astype(np.float64)
    assert np.abs(x[0] - x[1]).max() > 0.1
    assert np.allclose(mirror.features(x[:1]), x[1:], atol=1e-5)
    assert np.allclose(mirror.features(mirror.features(x[:1])), x[:1], atol=1e-5)


def test_a_mirrored_photo_gives_the_mirrored_features(ict):
    """Mirroring the features of a render agrees with the features MediaPipe finds in the mirrored render."""
    from likeness.model.camera import Camera
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.mirror import Mirror
    from likeness.learned.render import HeadRenderer, Lighting
    from likeness.learned.runtime import SHIPPED

    from safetensors.numpy import load_file

    if not SHIPPED.is_file():
        pytest.skip("no shipped checkpoint")
    template = load_file(str(SHIPPED))["template"].astype(np.float64)
    rot, centre = head_rotation(20, 5, 8), ict.neutral[ict.landmarks_68].mean(0)
    trans = np.array([0.0, 0.0, -0.6]) - rot @ centre
    expression = np.zeros(len(ict.expression_names))
    for name in ("mouthSmile_L", "eyeBlink_L", "browOuterUp_L", "jawLeft"):
        expression[ict.expression_names.index(name)] = 0.9
    rgb = HeadRenderer(ict).render(ict.vertices(expression=expression), SkinPainter(ict).paint(1, "heldout"), rot,
                                   trans, Camera(700.0, (256.0, 256.0), (512, 512)),
                                   Lighting(np.array([0.0, 0.3, 0.95]), np.ones(3), np.full(3, 0.3), 0.2, 0.2),
                                   np.random.default_rng(2))
    detector, mirror = LandmarkDetector(max_faces=1), Mirror(template, ict.expression_names)
    x = [feats.encoder_features(f.points_px, f.depth_px, feats.score_vector(None), template)
         for f in (detector.detect(rgb), detector.detect(np.ascontiguousarray(rgb[:, ::-1])))]
    mirrored = mirror.features(x[0][None])[0]
    shape, rotation = feats.SHAPE_COLS, feats.ROTATION_COLS
    gap = np.abs(mirrored[shape] - x[1][shape]).mean()
    assert gap < 0.4 * np.abs(x[0][shape] - x[1][shape]).mean()  # far closer than the unmirrored face
    assert gap < 0.01  # inter-ocular units
    assert np.abs(mirrored[rotation] - x[1][rotation]).max() < 0.05


@needs_torch
def test_training_mirrors_the_faces_it_picks_as_the_mirror_does():
    from likeness.learned.mirror import Mirror
    from likeness.learned.train import _TorchMirror

    rng = np.random.default_rng(5)
    template, _ = _symmetric_template(rng)
    names = ("eyeBlink_L", "eyeBlink_R", "jawOpen")
    mirror = Mirror(template, names)
    x = rng.normal(0, 0.05, (6, feats.FEATURES)).astype(np.float32)
    x[:, feats.ROTATION_COLS] = np.stack([head_rotation(*rng.uniform(-30, 30, 3)).ravel() for _ in range(6)])
    crops = rng.integers(0, 255, (6, 3, 8, 8)).astype(np.float32)
    y, a = rng.random((6, 3)).astype(np.float32), rng.normal(0, 1, (6, 3)).astype(np.float32)
    mask = torch.tensor([True, False, True, True, False, False])
    xo, co, yo, ao = _TorchMirror(mirror, "cpu")(mask, *(torch.from_numpy(v) for v in (x, crops, y, a)))
    m = mask.numpy()
    assert np.allclose(xo.numpy()[m], mirror.features(x[m]), atol=1e-5) and np.array_equal(xo.numpy()[~m], x[~m])
    assert np.array_equal(co.numpy()[m], crops[m][..., ::-1]) and np.array_equal(co.numpy()[~m], crops[~m])
    assert np.array_equal(yo.numpy()[m], y[m][:, [1, 0, 2]]) and np.array_equal(ao.numpy()[m], mirror.angles(a[m]))


@needs_torch
def test_the_true_face_points_are_mirrored_with_their_face():
    """A face seen in a mirror and its true points seen in the same mirror give the residuals that training's
    mirror makes of the face's own (points swapped with their twins, reflected)."""
    from likeness.learned.mirror import Mirror
    from likeness.learned.train import _TorchMirror
    from likeness.learned.trainset import landmark_residuals

    rng = np.random.default_rng(9)
    template, perm = _symmetric_template(rng)
    turn = head_rotation(20, -5, 8)
    seen = (template + rng.normal(0, 0.03, template.shape)) @ turn.T * 60  # MediaPipe's points (pixels)
    true = seen[:468] + rng.normal(0, 2.0, (468, 3))  # the true ones, a few pixels away
    flipped = np.diag([-1.0, 1.0, 1.0])
    mirrored_seen, mirrored_true = seen[perm] @ flipped, true[perm[:468]] @ flipped
    r = landmark_residuals(np.stack([seen, mirrored_seen]), np.stack([true, mirrored_true]), template)
    flip = _TorchMirror(Mirror(template, ("jawOpen",)), "cpu")
    out = flip.residuals(torch.tensor([True, False]), torch.from_numpy(r[[0, 0]])).numpy()
    assert np.abs(r[0] - r[1]).max() > 0.01  # the mirror changes them
    assert np.allclose(out[0], r[1], atol=1e-4) and np.array_equal(out[1], r[0])


def test_each_data_version_keeps_what_the_one_before_added(tmp_path):
    from dataclasses import replace

    from likeness.learned.dataset import CYCLES, PHOTO_SKINS, VERSIONS, look, shard_path

    looks = [look(v) for v in VERSIONS]
    first = looks[0]  # version 1: none of the additions
    assert not any((first.studio, first.detail, first.creases, first.occlusion, first.photo_skin, first.cycles))
    assert first.eyes == 0
    for before, after in zip(looks, looks[1:]):  # a version adds to the one before, never takes a step back
        assert all(getattr(after, f) >= getattr(before, f) for f in ("studio", "detail", "creases", "occlusion",
                                                                     "photo_skin", "cycles"))
    assert look(PHOTO_SKINS).photo_skin and not look(PHOTO_SKINS - 1).photo_skin
    assert look(CYCLES).cycles and not look(CYCLES - 1).cycles and CYCLES == max(VERSIONS)
    assert look(CYCLES) == replace(look(CYCLES - 1), cycles=True)  # the Cycles version changes the shading only
    assert len({shard_path(tmp_path, "train", 0, v) for v in VERSIONS}) == len(VERSIONS)  # caches never mix
    with pytest.raises(ValueError, match="unknown training-data version"):
        look(max(VERSIONS) + 1)


@needs_torch
def test_cycles_shards_join_before_the_validation_shard():
    from likeness.learned.dataset import SHARD
    from likeness.learned.trainset import before_last_shard

    ours = {"found": np.ones(3 * SHARD), "expression": np.arange(3 * SHARD)[:, None] * np.ones((1, 2))}
    shaded = {"found": np.zeros(2 * SHARD), "expression": -1 - np.arange(2 * SHARD)[:, None] * np.ones((1, 2))}
    joined = before_last_shard(ours, shaded)
    assert joined["expression"].shape == (5 * SHARD, 2) and len(joined["found"]) == 5 * SHARD
    assert np.array_equal(joined["expression"][-SHARD:], ours["expression"][-SHARD:])  # validation: the same shard
    assert np.array_equal(joined["expression"][2 * SHARD:4 * SHARD], shaded["expression"])
    assert np.array_equal(joined["found"][:2 * SHARD], ours["found"][:2 * SHARD])


def test_dropped_landmarks_leave_the_image_and_the_rotation_to_read_the_face():
    from likeness.learned.train import drop_landmarks

    rng = np.random.default_rng(8)
    shape, rotation, scores = feats.SHAPE_COLS, feats.ROTATION_COLS, feats.SCORE_COLS
    x = torch.from_numpy(rng.normal(0, 1, (5, feats.FEATURES)).astype(np.float32))
    mean = torch.from_numpy(rng.normal(0, 1, feats.FEATURES).astype(np.float32))
    lost = torch.tensor([False, True, False, True, True])
    out = drop_landmarks(x, lost, mean)
    assert torch.equal(out[~lost], x[~lost])  # the others untouched
    assert torch.equal(out[lost, shape], mean[shape].expand(3, -1))  # landmarks at the mean: 0 once standardised
    assert torch.equal(out[lost, rotation], x[lost, rotation])  # the rotation kept (angles and the mirror need it)
    assert not out[lost, scores].any()  # no scores, and the flag that says so
    assert not torch.equal(x[lost, shape], mean[shape].expand(3, -1))  # a copy: the input is not changed


@needs_torch
def test_the_random_convolution_changes_the_picked_crops_textures_not_their_shapes():
    from likeness.learned.train import random_convolution

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 12) ** 2 + (xx - 20) ** 2 < 49).astype(np.float32)  # a bright disc on a dim ground
    colour = rng.uniform(0.4, 0.9, (64, 3, 1, 1)).astype(np.float32)
    images = torch.from_numpy(0.2 + 0.6 * disc[None, None] * colour)
    assert random_convolution(images, np.zeros(64, bool), np.random.default_rng(1)) is images
    picks = np.random.default_rng(1).random(64) < 0.5
    out = random_convolution(images, picks, np.random.default_rng(1))
    again = random_convolution(images, picks, np.random.default_rng(1))
    assert torch.equal(out, again) and out.shape == images.shape
    changed = (out != images).flatten(1).any(1).numpy()
    assert np.array_equal(changed, picks)  # the picked crops change; the rest are untouched
    picked = out[torch.from_numpy(changed)].numpy()
    # the disc stays where it was: inside and outside differ in each picked crop (its sign may flip)
    inside, outside = picked[..., disc > 0].mean(-1), picked[..., disc == 0].mean(-1)
    assert (np.abs(inside - outside).max(1) > 0.05).all()
    assert np.allclose(picked.mean((2, 3)), images[torch.from_numpy(changed)].numpy().mean((2, 3)), atol=0.1)
    assert picked.min() >= 0.0 and picked.max() <= 1.0


def test_a_pack_holds_the_training_set(tmp_path):
    from likeness.learned.pack import pack, unpack

    rng = np.random.default_rng(6)
    n = 40
    shape = rng.normal(0, 0.03, (6, 478 * 3))  # landmark features of low rank, as faces are
    x = np.concatenate([rng.normal(0, 1, (n, 6)) @ shape, rng.normal(0, 0.3, (n, 9)),
                        rng.random((n, 53))], 1).astype(np.float32)
    yy, xx = np.mgrid[:feats.CROP, :feats.CROP]
    crops = np.stack([np.stack([128 + 90 * np.sin(xx / 11 + k), yy * 1.5, np.full_like(xx, 5 * k)], -1)
                      for k in range(n)]).astype(np.uint8)
    y = np.where(rng.random((n, 53)) < 0.2, rng.random((n, 53)), 0).astype(np.float32)
    angles = rng.uniform(-40, 40, (n, 3)).astype(np.float32)
    path = pack(x, crops, y, angles, rng.normal(0, 1, (478, 3)), rng.normal(0, 1, (468, 2)), ("a", "b"),
                tmp_path / "p" / "train.npz", {"renders": n}, components=16)
    assert not list(path.parent.glob("*.part"))
    d = unpack(path)
    assert d["names"] == ("a", "b") and d["meta"] == {"renders": n}
    assert np.abs(d["features"] - x).max() < 2e-3 and np.abs(d["expression"] - y).max() < 1e-3
    assert np.array_equal(d["angles"], angles) and d["crops"].shape == crops.shape
    assert 10 * np.log10(255 ** 2 / ((d["crops"].astype(float) - crops) ** 2).mean()) > 25


def test_the_encoders_gaze_is_mixed_with_the_irises_by_its_share():
    from likeness.service.pipeline import _combine

    nan = np.nan
    first, second = np.array([0.8, nan, 0.2, nan]), np.array([0.4, 0.6, nan, nan])
    mixed = _combine(first, second, 0.75)
    assert mixed[0] == pytest.approx(0.7) and mixed[1] == 0.6 and mixed[2] == 0.2 and np.isnan(mixed[3])
    assert _combine(first, second)[0] == pytest.approx(0.6) and np.array_equal(_combine(None, second), second,
                                                                                equal_nan=True)


def test_the_encoder_is_trusted_less_where_it_disagrees_with_the_landmarks():
    from likeness.capture.fit import Observation, trusted
    from likeness.model.camera import Camera

    encoder = np.array([0.50, 0.55, 0.95, np.nan, 0.0])
    reading = np.array([0.50, 0.50, 0.10, 0.30, 0.0])  # the landmarks' own reading (the identity stage's)
    obs = Observation(np.zeros((478, 2)), np.zeros(478), Camera(500.0, (64.0, 64.0), (128, 128)), encoder,
                      sources=("expression_encoder",))
    gated = trusted(obs, reading, 0.15).evidence
    assert gated[0] == pytest.approx(0.50) and gated[4] == 0.0  # agreement: unchanged
    assert 0.54 < gated[1] < 0.55  # a small difference stays nearly whole
    assert 0.10 < gated[2] < 0.25  # a large one is mostly taken back to the landmarks' reading
    assert np.isnan(gated[3])  # no evidence stays none


def test_the_encoder_keeps_the_side_of_a_one_sided_expression_the_landmarks_read_as_even():
    """With the pairs, the gate takes back a left/right pair's mean where the landmarks disagree, but (at side trust
    0) not its side: a wink the encoder reads stays a wink; a negative side trust gates each shape alone."""
    from dataclasses import replace

    from likeness.capture.fit import Observation, side_pairs, trusted
    from likeness.model.camera import Camera

    names = ("eyeBlink_L", "jawOpen", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R")
    pairs = side_pairs(names)
    assert [list(p) for p in pairs] == [[0, 3], [2, 4]]
    encoder = np.array([0.9, 0.3, 0.1, 0.6, 0.6])  # a left wink, an even smile
    reading = np.array([0.5, 0.3, 0.5, 0.1, 0.1])  # the landmarks: both lids half shut, no smile
    obs = Observation(np.zeros((478, 2)), np.zeros(478), Camera(500.0, (64.0, 64.0), (128, 128)), encoder,
                      sources=("expression_encoder",))
    gated = trusted(obs, reading, 0.15, pairs, 0.0).evidence
    assert gated[0] - gated[2] == pytest.approx(0.8)  # the wink's side is the encoder's
    assert (gated[0] + gated[2]) / 2 == pytest.approx(0.5)  # both agree on the lids' mean
    assert gated[3] == pytest.approx(gated[4]) and 0.1 < gated[3] < 0.25  # the disputed smile is taken back
    alone = trusted(obs, reading, 0.15, pairs, -1.0).evidence
    np.testing.assert_allclose(alone, trusted(obs, reading, 0.15).evidence)
    assert alone[0] - alone[2] < 0.3  # each lid alone: the wink mostly lost
    np.testing.assert_array_equal(obs.evidence, encoder)  # the observation itself is left as it was
    half = replace(obs, evidence=np.where(np.arange(5) == 2, np.nan, encoder))  # the right lid unread
    lone = trusted(half, reading, 0.15, pairs, 0.0).evidence
    assert np.isnan(lone[2]) and lone[0] == pytest.approx(alone[0])  # the left lid gated alone, no NaN spread


def test_the_identity_stage_can_rest_on_mediapipes_scores(ict):
    """With ``identity_scores_weight`` the encoder path's identity is the one the fit without the encoder finds
    from the same landmarks and MediaPipe's scores; the encoder then reads only pose and expression."""
    from dataclasses import replace

    from likeness.capture.fit import FitSettings, LandmarkBasis, Observation, fit_landmarks
    from likeness.model.camera import Camera
    from likeness.model.correspondence import load_table
    from likeness.service.pipeline import Engine

    settings = FitSettings(sliding_contour=False, identity_scores_weight=400.0, evidence_weight=1600.0)
    basis = LandmarkBasis.build(ict, load_table(), settings)
    rng = np.random.default_rng(3)
    identity = rng.normal(0, 0.8, settings.identity_count)
    expression = np.zeros(len(ict.expression_names))
    expression[ict.expression_names.index("jawOpen")] = 0.4
    rot, centre = head_rotation(15, -5, 0), basis.base.mean(0)
    camera = Camera(700.0, (256.0, 256.0), (512, 512))
    px, depth = camera.project(basis.points(identity, expression) @ rot.T + np.array([0.0, 0.0, -0.6]) - rot @ centre)
    scores = np.clip(expression + rng.normal(0, 0.05, len(expression)), 0, 1)
    misread = np.clip(expression + rng.normal(0, 0.3, len(expression)), 0, 1)  # an encoder far off
    obs = Observation(px, depth - depth.mean(), camera, misread, sources=("expression_encoder",),
                      scores_evidence=scores)
    engine = Engine(use_blendshapes=False)
    both = engine.fit(basis, [obs], settings)
    plain = fit_landmarks(basis, [replace(obs, evidence=scores, sources=())],
                          replace(settings, evidence_weight=settings.identity_scores_weight))
    assert np.allclose(both.identity, plain.identity)
    old = engine.fit(basis, [obs], replace(settings, identity_scores_weight=0.0))
    assert not np.allclose(old.identity, plain.identity, atol=1e-3)  # the encoder's misreading bent it before


@pytest.mark.parametrize("value, expected", [("", None), ("on", True), ("YES", True), ("1", True), ("off", False),
                                             ("no", False), ("none", False), ("/m/enc.safetensors", "path")])
def test_the_encoder_setting_reads_on_off_and_paths_alike_everywhere(monkeypatch, value, expected):
    """$LIKENESS_EXPRESSION_ENCODER means the same to the engine (on or off) and to the checkpoint lookup."""
    from pathlib import Path

    from likeness.learned.runtime import SHIPPED, find_weights
    from likeness.paths import encoder_env
    from likeness.service.pipeline import encoder_wanted

    monkeypatch.setenv("LIKENESS_EXPRESSION_ENCODER", value)
    if expected == "path":
        assert encoder_env() == Path(value) and encoder_wanted() is True and find_weights() == Path(value)
    else:
        assert encoder_env() is expected and encoder_wanted() is expected
        assert find_weights() == (SHIPPED if SHIPPED.is_file() else None)
