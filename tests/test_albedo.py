"""Delighting: albedo from a side-lit render of a known albedo beats the raw projected texture; maps; relight."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from likeness.appearance import light as sh
from likeness.appearance.albedo import MIN_SKIN_SAMPLES, delight, match_tones
from likeness.model.camera import Camera
from likeness.model.geometry import head_rotation
from likeness.appearance.maps import normal_map, roughness_map
from likeness.model.regions import LIPS, SKIN, vertex_regions
from likeness.appearance.relight import render_lit
from likeness.appearance.texture import PhotoView, bake_textures, uv_map

SIZE = 256  # texture size of the test bakes


def _true_albedo(ict) -> dict[int, np.ndarray]:
    """A symmetric skin albedo (sRGB) with soft blotches, per projected material."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    pattern = 0.08 * np.sin(9 * yy) * np.cos(7 * (xx - 0.5))  # even in x about the face tile's centre
    base = np.array([205.0, 150.0, 125.0])
    texture = np.clip(base * (1 + pattern[..., None]), 0, 255).astype(np.uint8)
    return {i: texture for i, m in enumerate(ict.materials) if m.projected}


def _scene(ict, yaw: float, light_direction: list[float], color=(1.0, 1.0, 1.0)):
    camera = Camera(900.0, (256.0, 256.0), (512, 512))
    rotation = head_rotation(yaw, 0.0, 0.0)
    verts = ict.vertices() @ rotation.T + np.array([0.0, 0.0, -0.6])
    truth = _true_albedo(ict)
    light_camera = sh.rotate(sh.directional(light_direction, strength=0.9, ambient=0.2), rotation) * np.array(color)
    image, _ = render_lit(ict, verts, camera, truth, light_camera, max_side=512)
    return camera, rotation, verts, truth, image


def _face_error(ict, baked: np.ndarray, truth: np.ndarray) -> float:
    """Median relative error of the face tile's skin texels (linear), after one global scale per channel."""
    uvm = uv_map(ict, 0, SIZE)
    skin = (vertex_regions(ict) == SKIN) & (np.arange(ict.vertex_count) < ict.face_vertex_count)
    texels = uvm.texels[(uvm.blend @ skin.astype(np.float64)) > 0.99]
    got = sh.SRGB8_TO_LINEAR[baked.reshape(-1, 3)[texels]]
    want = sh.SRGB8_TO_LINEAR[truth.reshape(-1, 3)[texels]]
    seen = got.sum(1) > 0.02
    ratio = got[seen] / want[seen]
    return float(np.median(np.abs(ratio / np.median(ratio, axis=0) - 1)))


def test_albedo_from_a_side_lit_render_is_closer_to_the_truth_than_the_raw_texture(ict):
    camera, rotation, verts, truth, image = _scene(ict, yaw=10.0, light_direction=[1.0, 0.3, 0.6])
    view = PhotoView.build(ict, image, camera, verts)
    lit = delight(ict, view, rotation)
    raw = bake_textures(ict, [view], SIZE)[0]
    delit = bake_textures(ict, [replace(view, rgb=lit.albedo_rgb)], SIZE)[0]
    raw_error, delit_error = _face_error(ict, raw, truth[0]), _face_error(ict, delit, truth[0])
    assert delit_error < 0.6 * raw_error, (raw_error, delit_error)


def test_light_is_found_in_the_head_frame(ict):
    """Turned 30°, the head-frame light differs from the camera-frame one (a transposed rotation is 60° off)."""
    direction = np.array([1.0, 0.3, 0.6])
    camera, rotation, verts, truth, image = _scene(ict, yaw=-30.0, light_direction=direction)
    lit = delight(ict, PhotoView.build(ict, image, camera, verts), rotation)
    found = lit.light_head[[3, 1, 2], 0]  # band 1 is (y, z, x) times the direction
    cosine = found @ direction / np.linalg.norm(found) / np.linalg.norm(direction)
    assert cosine > np.cos(np.radians(25)), np.degrees(np.arccos(cosine))


def _pattern_disagreement(first: np.ndarray, second: np.ndarray) -> float:
    """Median relative difference of two luminance arrays after one global scale."""
    ratio = second / first
    return float(np.median(np.abs(ratio / np.median(ratio) - 1)))


def test_same_albedo_under_different_lights(ict):
    """Front and strong side lights give nearly the same albedo, and each is left/right even."""
    bakes = {"raw": [], "albedo": []}
    for direction in ([0.0, 0.2, 1.0], [1.0, 0.2, 0.4], [-1.0, 0.2, 0.4]):
        camera, rotation, verts, truth, image = _scene(ict, yaw=0.0, light_direction=direction)
        view = PhotoView.build(ict, image, camera, verts)
        bakes["raw"].append(bake_textures(ict, [view], SIZE)[0])
        bakes["albedo"].append(bake_textures(ict, [replace(view, rgb=delight(ict, view, rotation).albedo_rgb)],
                                             SIZE)[0])
    uvm = uv_map(ict, 0, SIZE)
    centre = uvm.texels[(uvm.blend @ (np.arange(ict.vertex_count) < ict.face_vertex_count)) > 0.99]
    lum = {kind: [sh.SRGB8_TO_LINEAR[b.reshape(-1, 3)[centre]].mean(1) for b in found]
           for kind, found in bakes.items()}
    for k in (1, 2):
        assert abs(np.median(lum["albedo"][k] / lum["albedo"][0]) - 1) < 0.2  # exposure: the peak sets the scale
        delit = _pattern_disagreement(lum["albedo"][0], lum["albedo"][k])
        assert delit < 0.1 and delit < 0.5 * _pattern_disagreement(lum["raw"][0], lum["raw"][k])
    rows, cols = np.divmod(centre, SIZE)
    for b in bakes["albedo"][1:]:
        left = sh.SRGB8_TO_LINEAR[b[rows[cols > SIZE // 2], cols[cols > SIZE // 2]]].mean()
        right = sh.SRGB8_TO_LINEAR[b[rows[cols < SIZE // 2], cols[cols < SIZE // 2]]].mean()
        assert abs(left / right - 1) < 0.15, (left, right)


def test_photos_under_different_casts_get_one_skin_tone(ict):
    """The same skin under a white front light and a dim orange side light: delit alone, the two albedos differ in
    colour and exposure; matched, both photos bake to the same tone, and albedo × light still gives each photo."""
    delit, views = [], []
    for direction, color in (([0.0, 0.2, 1.0], (1.0, 1.0, 1.0)), ([0.8, 0.3, 0.6], (0.6, 0.4, 0.2))):
        camera, rotation, verts, truth, image = _scene(ict, yaw=0.0, light_direction=direction, color=color)
        views.append(PhotoView.build(ict, image, camera, verts))
        delit.append(delight(ict, views[-1], rotation))
    assert min(d.skin_samples for d in delit) >= MIN_SKIN_SAMPLES
    matched = match_tones(delit)
    uvm = uv_map(ict, 0, SIZE)
    face = uvm.texels[(uvm.blend @ (np.arange(ict.vertex_count) < ict.face_vertex_count)) > 0.99]

    def colour_ratio(pair: list) -> np.ndarray:
        """Per channel, the median ratio of the second photo's baked albedo to the first's."""
        bakes = [bake_textures(ict, [replace(v, rgb=d.albedo_rgb)], SIZE)[0] for v, d in zip(views, pair)]
        first, second = (sh.SRGB8_TO_LINEAR[b.reshape(-1, 3)[face]] for b in bakes)
        seen = (first.sum(1) > 0.02) & (second.sum(1) > 0.02)
        return np.median(second[seen] / first[seen], axis=0)

    before, after = colour_ratio(delit), colour_ratio(matched)
    assert before.max() / before.min() > 1.5 and before.max() < 0.8, before  # the orange cast, the dim light
    assert after.max() / after.min() < 1.02, after  # one colour
    assert abs(after.mean() - 1) < 0.15, after  # one exposure (as far as the side light's delighting allows)
    assert np.allclose(matched[0].skin_albedo, matched[1].skin_albedo)
    for old, new in zip(delit, matched):  # what moved out of the albedo moved into the light
        assert np.allclose(new.light_camera * new.skin_albedo, old.light_camera * old.skin_albedo, rtol=1e-5)
        assert np.allclose(new.light_head * new.skin_albedo, old.light_head * old.skin_albedo, rtol=1e-5)
    assert match_tones(delit[:1])[0] is delit[0]  # one photo: untouched
    unsure = replace(delit[1], skin_samples=MIN_SKIN_SAMPLES - 1)  # too little skin seen: neither votes nor moves
    assert match_tones([delit[0], unsure])[1] is unsure


def test_normal_map_is_flat_on_flat_albedo_and_bends_at_detail():
    flat = np.full((128, 128, 3), 180, np.uint8)
    n = normal_map(flat).astype(int)
    assert np.abs(n - [128, 128, 255]).max() <= 1
    dotted = flat.copy()
    dotted[60:68, 60:68] = 90  # a dark pore: a dent
    n = normal_map(dotted).astype(int)
    # the dent's walls face into it: +U on its left wall, −U on its right wall; rows run down, V up
    assert n[64, 60, 0] > 140 and n[64, 67, 0] < 116
    assert n[67, 64, 1] > 140 and n[60, 64, 1] < 116


def test_roughness_map_follows_the_regions(ict):
    image = roughness_map(ict, 0, 1024).astype(np.float64) / 255
    uvm = uv_map(ict, 0, 256)
    regions = vertex_regions(ict)
    weights = uvm.blend @ np.stack([regions == LIPS, regions == SKIN], 1).astype(np.float64)
    lips, skin = uvm.texels[weights[:, 0] > 0.99], uvm.texels[weights[:, 1] > 0.99]
    assert image.ravel()[lips].mean() < image.ravel()[skin].mean() - 0.08


def test_bundle_carries_the_light_and_maps(engine, ict_path, tmp_path):
    from shared_paths import DEV_IMAGES
    photo = DEV_IMAGES / "dev_000_london_002_03.jpg"
    if not photo.is_file():
        pytest.skip("dev photos not available")
    from likeness.service.pipeline import ReconstructRequest
    out = engine.reconstruct(ReconstructRequest([str(photo)], str(tmp_path / "b"), 256, str(ict_path)))["bundle"]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    light = np.array(manifest["photos"][0]["light"]["sh"])
    assert light.shape == (9, 3) and light[0].min() > 0
    face = next(m for m in manifest["materials"] if m["name"] == "skin_face")
    hair = {"hair_mask", "hair_color"}  # optional
    assert set(face["textures"]) - hair == {"base_color", "normal", "roughness"}
    head = next(m for m in manifest["materials"] if m["name"] == "skin_head")
    assert set(head["textures"]) - hair == {"base_color", "roughness"}  # no skin detail to show on scalp and neck
    iris = next(m for m in manifest["materials"] if m["name"] == "iris")
    assert max(iris["base_color"][:3]) < 0.5  # sampled from the photo's dark irises, not the default
    for name in ("left", "right"):
        done = subprocess.run([sys.executable, "-m", "likeness", "relight", out, "--light", name, "--size", "128",
                               "-o", str(tmp_path / f"{name}.png")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    from PIL import Image
    left = np.asarray(Image.open(tmp_path / "left.png"), np.float64)
    right = np.asarray(Image.open(tmp_path / "right.png"), np.float64)
    half = left.shape[1] // 2  # the subject's left is the image's right in this frontal photo
    assert left[:, half:].mean() > left[:, :half].mean() + 3 and right[:, :half].mean() > right[:, half:].mean() + 3
    bad = subprocess.run([sys.executable, "-m", "likeness", "relight", out, "--light", "sideways", "-o",
                          str(tmp_path / "x.png")], capture_output=True, text=True)
    assert bad.returncode == 2 and "neither a light name" in bad.stderr and not (tmp_path / "x.png").exists()
