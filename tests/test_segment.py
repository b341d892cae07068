"""Per-photo segmentation (likeness.capture.segment), the skin-only bake (likeness.appearance.texture) and its measure
(likeness.appearance.cleanskin), and the hair in the bundle."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from likeness.capture.segment import (BACKGROUND, CLOTHING, FACE_OVAL, FEATURES, HAIR, OPENING, OPENINGS, SKIN,
                                      SKIN_SAMPLES, PersonSegmenter, label_pixels, segment_photo)

SIZE = 256
CENTRE, AXES = (128.0, 130.0), (48.0, 62.0)  # the face's ellipse (x, y) and half-axes, px
SKIN_RGB, HAIR_RGB, SHIRT_RGB, WALL_RGB = (205, 150, 125), (45, 30, 22), (40, 120, 70), (95, 140, 205)


def _ellipse(scale: float = 1.0, dy: float = 0.0) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return ((xs - CENTRE[0]) / (AXES[0] * scale)) ** 2 + ((ys - CENTRE[1] - dy) / (AXES[1] * scale)) ** 2 <= 1.0


#: Where the synthetic face's mouth lies: centre and half-width (x) as fractions of AXES.
MOUTH = ((0.0, 0.5), 0.25)


def _ring(centre: tuple[float, float], half: tuple[float, float], n: int) -> np.ndarray:
    """n points (px) around an ellipse of the face's frame (fractions of AXES about CENTRE)."""
    t = np.pi + np.arange(n) * 2 * np.pi / n
    return np.stack([CENTRE[0] + AXES[0] * (centre[0] + half[0] * np.cos(t)),
                     CENTRE[1] + AXES[1] * (centre[1] + half[1] * np.sin(t))], 1)


def synthetic_portrait(seed: int = 0, mouth_open: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A skin-coloured face ellipse under a dark hair cap, a neck and a green shirt on a blue wall, with
    MediaPipe-numbered landmarks where a face detector would put them; also the true regions. ``mouth_open`` > 0
    (half-height, a fraction of the face's half-height) shows teeth and the mouth's dark inside between the lips
    (region ``mouth``)."""
    ys = np.mgrid[0:SIZE, 0:SIZE][0] + 0.5
    face = _ellipse()
    cap = _ellipse(1.3, -12.0) & ~face & (ys < CENTRE[1] - 10)
    neck = (np.abs(np.mgrid[0:SIZE, 0:SIZE][1] + 0.5 - CENTRE[0]) < 28) & (ys > CENTRE[1]) & ~face & (ys < 215)
    shirt = (ys >= 215) & (np.abs(np.mgrid[0:SIZE, 0:SIZE][1] + 0.5 - CENTRE[0]) < 110)
    image = np.empty((SIZE, SIZE, 3), np.float64)
    image[:] = WALL_RGB
    for region, colour in ((face, SKIN_RGB), (neck, SKIN_RGB), (cap, HAIR_RGB), (shirt, SHIRT_RGB)):
        image[region] = colour
    xs = np.mgrid[0:SIZE, 0:SIZE][1] + 0.5
    mouth = np.zeros_like(face)
    if mouth_open > 0:
        (mx, my), ha = MOUTH
        u, v = (xs - CENTRE[0]) / AXES[0] - mx, (ys - CENTRE[1]) / AXES[1] - my
        mouth = (u / ha) ** 2 + (v / mouth_open) ** 2 <= 1.0
        image[mouth] = (45, 20, 25)  # the dark inside, the upper teeth in front
        image[mouth & (v < 0)] = (235, 232, 222)
    image += np.random.default_rng(seed).normal(0, 4, image.shape)
    rgb = np.clip(image, 0, 255).astype(np.uint8)

    cx, cy = CENTRE
    a, b = AXES
    points = np.tile([cx, cy], (478, 1)).astype(np.float64)
    angles = -np.pi / 2 + np.arange(len(FACE_OVAL)) * 2 * np.pi / len(FACE_OVAL)  # from the top, clockwise
    points[FACE_OVAL] = np.stack([cx + a * np.cos(angles), cy + b * np.sin(angles)], 1)
    points[FEATURES] = [cx, cy] + np.random.default_rng(1).uniform([-0.5 * a, -0.45 * b], [0.5 * a, 0.5 * b],
                                                                   (len(FEATURES), 2))
    marks = {33: (-0.45, -0.25), 263: (0.45, -0.25), 105: (-0.4, -0.4), 334: (0.4, -0.4), 61: (-0.3, 0.5),
             291: (0.3, 0.5)}
    for i, (u, v) in marks.items():
        points[i] = [cx + u * a, cy + v * b]
    points[SKIN_SAMPLES] = [cx, cy] + np.array([[-0.5, 0.15], [0.5, 0.15]] * 6) * [a, b]
    # the inner lip line (shut unless the mouth is open), in MediaPipe's order around
    points[OPENINGS[0]] = _ring(MOUTH[0], (MOUTH[1], mouth_open), len(OPENINGS[0]))
    person = (face | cap | neck | shirt).astype(np.float32)
    return rgb, points, {"face": face, "cap": cap, "neck": neck, "shirt": shirt, "wall": person == 0,
                         "person": person, "mouth": mouth}


def share(labels: np.ndarray, region: np.ndarray, label: int) -> float:
    return float((labels[region] == label).mean())


def test_synthetic_portrait_is_labelled():
    rgb, points, truth = synthetic_portrait()
    labels, skin, hair, hair_rgb = label_pixels(rgb, points, truth["person"])
    assert share(labels, truth["face"], SKIN) > 0.98
    assert share(labels, truth["neck"], SKIN) > 0.95
    assert share(labels, truth["cap"], HAIR) > 0.95
    assert share(labels, truth["shirt"], CLOTHING) > 0.95
    assert share(labels, truth["wall"], BACKGROUND) > 0.99
    assert skin[truth["cap"]].mean() < 0.05 and skin[truth["shirt"]].mean() < 0.05
    lip_line = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(lip_line, [np.round(points[OPENINGS[0]]).astype(np.int32)], 1)
    assert share(labels, lip_line > 0, SKIN) == 1.0  # the mouth is shut: its line is lip, not an opening
    assert skin[cv2.erode(truth["face"].astype(np.uint8), np.ones((5, 5))) > 0].min() > 0.9
    assert hair[truth["cap"]].mean() > 0.9
    assert np.abs(hair_rgb - HAIR_RGB).max() < 10


def test_teeth_and_the_mouths_inside_are_never_skin():
    """What the inner lip line encloses (teeth, the dark inside) is an opening: it gets no skin weight, so a lip the
    fit places a few pixels off cannot carry teeth into the skin albedo; the face around it stays skin."""
    rgb, points, truth = synthetic_portrait(mouth_open=0.08)
    labels, skin, *_ = label_pixels(rgb, points, truth["person"])
    inside = cv2.erode(truth["mouth"].astype(np.uint8), np.ones((3, 3))) > 0
    assert inside.sum() > 100 and share(labels, inside, OPENING) == 1.0
    assert skin[truth["mouth"]].max() == 0.0
    around = truth["face"] & ~(cv2.dilate(truth["mouth"].astype(np.uint8), np.ones((5, 5))) > 0)
    assert share(labels, around, SKIN) > 0.98
    shut, *_ = label_pixels(*synthetic_portrait()[:2], truth["person"])  # a shut mouth encloses nothing
    assert share(shut, truth["mouth"], SKIN) == 1.0


def test_without_the_person_model_the_landmarks_and_colours_still_label():
    rgb, points, truth = synthetic_portrait(seed=3)
    labels, skin, *_ = label_pixels(rgb, points, None)
    assert share(labels, truth["face"], SKIN) > 0.98
    assert share(labels, truth["cap"], HAIR) > 0.8
    assert skin[truth["cap"]].mean() < 0.1
    corners = np.zeros_like(truth["wall"])
    corners[:30, :30] = corners[:30, -30:] = True
    assert share(labels, corners, BACKGROUND) == 1.0


def test_segment_photo_scales_to_the_photo_and_falls_back_without_a_model(tmp_path):
    rgb, points, truth = synthetic_portrait()
    big = cv2.resize(rgb, (3 * SIZE, 3 * SIZE), interpolation=cv2.INTER_NEAREST)
    missing = PersonSegmenter(tmp_path / "no_such_model.tflite")
    seg = segment_photo(big, points * 3, missing)
    assert seg.person_source == "landmarks" and missing.person(big) is None
    # labelled at the working size (long side 512), covering the whole photo
    assert seg.labels.shape == seg.skin.shape == seg.hair.shape == (512, 512) and seg.photo_size == (768, 768)
    assert seg.skin.dtype == np.uint8 and seg.hair.dtype == np.uint8
    face = cv2.resize(truth["face"].astype(np.uint8), (512, 512), interpolation=cv2.INTER_NEAREST) > 0
    assert share(seg.labels, face, SKIN) > 0.97
    assert abs(sum(seg.fractions().values()) - 1.0) < 1e-9


def test_bad_input_gives_clear_errors():
    rgb, points, _ = synthetic_portrait()
    with pytest.raises(ValueError, match="uint8 photo"):
        segment_photo(rgb.astype(np.float32), points)
    with pytest.raises(ValueError, match="uint8 photo"):
        label_pixels(rgb[..., 0], points, None)
    with pytest.raises(ValueError, match="landmarks"):
        label_pixels(rgb, points[:68], None)
    broken = points.copy()
    broken[5] = np.nan
    with pytest.raises(ValueError, match="landmarks"):
        label_pixels(rgb, broken, None)


def test_a_face_mostly_outside_the_photo_is_refused_and_the_job_goes_on(tmp_path):
    from likeness.capture.images import Photo
    from likeness.capture.landmarks import FaceLandmarks
    from likeness.service.pipeline import Engine

    rgb, points, _ = synthetic_portrait()
    outside = points + [400.0, 0.0]  # the face lies beyond the image's right edge
    with pytest.raises(ValueError, match="too few to learn the skin"):
        label_pixels(rgb, outside, None)
    engine = Engine(use_blendshapes=False)
    engine._segmenter = PersonSegmenter(tmp_path / "none.tflite")
    found = FaceLandmarks(outside, np.zeros(len(outside)), (0.0, 0.0, 1.0, 1.0))
    assert engine.segment(Photo(tmp_path / "p.jpg", rgb, 300.0, "default"), found) is None
    assert engine.segment(Photo(tmp_path / "p.jpg", rgb, 300.0, "default"),
                          FaceLandmarks(points, np.zeros(len(points)), (0.0, 0.0, 1.0, 1.0))) is not None


def test_selfie_model_tells_person_from_background():
    if PersonSegmenter.default_model() is None:
        pytest.skip("MediaPipe's selfie segmentation model is not installed")
    from likeness.service.cli import astronaut_photo
    from likeness.capture.images import load_photo

    rgb = load_photo(astronaut_photo()).rgb
    segmenter = PersonSegmenter()
    person = segmenter.person(cv2.resize(rgb, (256, 256)))
    assert person is not None and person.shape == (256, 256), segmenter.error
    assert person[:40, :40].mean() < 0.2  # the flag in the top-left corner is background
    assert person[36:60, 100:130].mean() > 0.8  # her face


def test_selfie_model_runs_after_smirk_flushed_denormals():
    """SMIRK turns on torch's process-wide flush-denormal mode, in which XNNPACK cannot prepare the selfie model:
    the segmenter prepares it with the mode off, and leaves it on again."""
    torch = pytest.importorskip("torch")
    if PersonSegmenter.default_model() is None:
        pytest.skip("MediaPipe's selfie segmentation model is not installed")
    tiny = np.array([1e-39], np.float32)
    torch.set_flush_denormal(True)
    try:
        segmenter = PersonSegmenter()
        assert segmenter.person(np.full((128, 128, 3), 120, np.uint8)) is not None, segmenter.error
        assert (tiny * np.float32(1.0))[0] == 0.0  # still flushed to zero
    finally:
        torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def astronaut_views(engine, ict_path):
    """The astronaut fitted, labelled and viewed (as the pipeline does it)."""
    from likeness.model.camera import Camera
    from likeness.service.cli import astronaut_photo
    from likeness.capture.images import load_photo
    from likeness.appearance.texture import PhotoView

    photo = load_photo(astronaut_photo())
    result, found = engine.analyse([photo], str(ict_path))
    model, _ = engine.model(str(ict_path))
    fit = result.photos[0]
    verts = model.vertices(result.identity) + np.tensordot(fit.expression, model.expression_basis, axes=1)
    view = PhotoView.build(model, photo.rgb, Camera(photo.focal_px, photo.principal_point, photo.size),
                           verts @ fit.rotation.T + fit.translation)
    return model, view, segment_photo(photo.rgb, found[0].points_px, PersonSegmenter())


def test_astronaut_skin_albedo_carries_no_hair(astronaut_views):
    from likeness.appearance.cleanskin import nonskin_share

    model, view, seg = astronaut_views
    assert seg.fractions()["hair"] > 0.01  # she has hair, and it is found
    before = nonskin_share(model, [view], [seg], 256, masked=False)
    after = nonskin_share(model, [view], [seg], 256, masked=True)
    assert before["hair"] > 0.05, before  # without the mask her hair is painted on the scalp
    assert after["hair"] < 0.002 and after["nonskin"] < 0.005, after
    assert before["opening"] > 0.0 and after["opening"] == 0.0  # her lips part: teeth show, and stay out
    assert before["texels"] == after["texels"] > 1000


def test_skin_mask_sends_non_skin_to_the_fill(astronaut_views):
    from dataclasses import replace

    from likeness.appearance.texture import bake_textures, uv_map

    model, view, seg = astronaut_views
    red = np.zeros_like(view.rgb)
    red[..., 0] = 255
    nothing = replace(view, rgb=red, skin=np.zeros_like(seg.skin))  # no pixel is skin: all texels are fill
    baked = bake_textures(model, [nothing], 64, fill_color=np.array([0.0, 0.0, 255.0]))
    texels = uv_map(model, 0, 64).texels
    assert (baked[0].reshape(-1, 3)[texels] == [0, 0, 255]).all()
    plain = bake_textures(model, [replace(view, rgb=red)], 64, fill_color=np.array([0.0, 0.0, 255.0]))
    assert (plain[0].reshape(-1, 3)[texels, 0] > 200).mean() > 0.3  # without the mask the photo shows


def test_bundle_carries_hair(engine, ict_path, tmp_path):
    from likeness.service.bundle import read_bundle
    from likeness.service.cli import astronaut_photo
    from likeness.service.pipeline import ReconstructRequest

    out = tmp_path / "b"
    engine.reconstruct(ReconstructRequest([str(astronaut_photo())], str(out), 256, str(ict_path)))
    manifest, _ = read_bundle(out)
    assert manifest["version"] == 1
    color = manifest["hair"]["color"]
    assert len(color) == 3 and all(0.0 <= c <= 1.0 for c in color)
    assert color[0] >= color[2]  # her hair is brown: more red than blue
    masks = {m["name"]: m["textures"]["hair_mask"] for m in manifest["materials"] if "hair_mask" in m["textures"]}
    assert "skin_head" in masks and set(manifest["hair"]["materials"]) == set(masks)
    mask = cv2.imread(str(out / masks["skin_head"]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 64) and mask.max() > 200  # grey, a quarter of the colour texture, hair seen
    colours = {m["name"]: m["textures"]["hair_color"] for m in manifest["materials"] if "hair_mask" in m["textures"]}
    assert set(colours) == set(masks)
    hair_rgb = cv2.cvtColor(cv2.imread(str(out / colours["skin_head"])), cv2.COLOR_BGR2RGB)
    assert hair_rgb.shape == (64, 64, 3)
    seen_hair = hair_rgb[mask > 200].astype(float)
    expected = 255 * np.clip(np.array(color), 0, 1) ** (1 / 2.2)  # roughly the sRGB of hair.color
    assert np.abs(np.median(seen_hair, axis=0) - expected).max() < 40  # the photos' hair, near its median colour
    assert seen_hair[:, 0].mean() > seen_hair[:, 2].mean()  # brown: more red than blue
    assert json.loads((out / "manifest.json").read_text())["hair"] == manifest["hair"]


def test_a_mask_smaller_than_the_photo_is_sampled_at_the_same_place():
    from likeness.appearance.texture import PhotoView

    w, h = 800, 600
    ramp = np.tile(np.linspace(0, 255, w, dtype=np.float32), (h, 1))  # skin weight = x / width
    small = cv2.resize(ramp, (200, 150), interpolation=cv2.INTER_AREA).round().astype(np.uint8)
    px = np.random.default_rng(0).uniform([20, 20], [w - 20, h - 20], (500, 2)).astype(np.float32)
    view = PhotoView(np.zeros((h, w, 3), np.uint8), None, None, None, None, px, np.ones(500, np.float32), small)
    assert view.skin_mask()[1:] == (0.25, 0.25)
    assert np.abs(view.skin_at_vertices() - px[:, 0] / w).max() < 0.01


def test_tidy_hair_mask_fills_pinholes_and_drops_specks_but_keeps_the_hairline():
    from likeness.capture.segment import tidy_hair_mask

    rng = np.random.default_rng(3)
    mask = np.zeros((256, 256), np.uint8)
    mask[:100] = 255  # hair above row 100
    holes = rng.random((100, 256)) < 0.08  # light strands read as skin
    mask[:100][holes] = 0
    specks = rng.random((156, 256)) < 0.01  # stray dark pixels below the hairline
    mask[100:][specks] = 255
    tidy = tidy_hair_mask(mask)
    assert (tidy[5:95] == 255).mean() > 0.995 and (mask[5:95] == 255).mean() < 0.95
    assert (tidy[105:250] == 0).mean() > 0.999
    edge = np.argmax(tidy[:, 20:236] == 0, axis=0)  # first non-hair row per column
    assert np.all(np.abs(edge - 100) <= 2)


def test_the_hair_cap_covers_the_unseen_crown_only_when_the_seen_scalp_is_hair(astronaut_views):
    from likeness.appearance.hair import hair_masks
    from likeness.appearance.texture import uv_map

    model, view, seg = astronaut_views
    head = next(i for i, m in enumerate(model.materials) if m.name == "skin_head")
    uvm = uv_map(model, head, 128)
    position = uvm.blend @ model.neutral.astype(np.float64)  # each texel's surface point, head frame
    brows = model.neutral[model.landmarks_68[17:27], 1].mean()
    back_top = (position[:, 2] < np.percentile(position[:, 2], 30)) & (position[:, 1] > brows + 0.05)
    below = position[:, 1] < brows - 0.03  # the nape and neck, below the cap
    masks = hair_masks(model, [view], [seg.hair], 128)
    values = masks[head].ravel()[uvm.texels] / 255.0
    assert back_top.sum() > 50 and values[back_top].mean() > 0.9  # no photo saw it: it is hair now
    assert values[below].mean() < 0.05
    bald = hair_masks(model, [view], [np.zeros_like(seg.hair)], 128)  # no hair seen anywhere: a bare crown
    assert bald[head].max() == 0
