"""Ambient occlusion of the head (likeness.appearance.occlusion) and its place in delighting and relighting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from likeness.appearance import light as sh
from likeness.appearance.albedo import delight
from likeness.appearance.occlusion import effective_occlusion, vertex_occlusion
from likeness.appearance.raster import vertex_normals
from likeness.appearance.relight import render_lit
from likeness.appearance.texture import PhotoView, bake_textures, uv_map
from likeness.model.camera import Camera
from likeness.model.geometry import head_rotation
from likeness.model.regions import SKIN, vertex_regions


def _mean_head(ict):
    verts = ict.vertices().astype(np.float64)
    return verts, vertex_normals(verts, ict.triangles)


def test_creases_are_occluded_and_convex_places_open(ict):
    verts, normals = _mean_head(ict)
    ao = vertex_occlusion(ict, verts, normals)
    assert ao.shape == (ict.vertex_count,) and ao.min() >= 0.0 and ao.max() <= 1.0
    lm = ict.landmarks_68  # iBUG numbering
    open_places = ao[lm[[30, 19, 24, 8]]]  # nose tip, brows, chin: convex
    creases = ao[lm[[39, 42, 48, 54, 31, 35]]]  # inner eye corners, mouth corners, beside the nostrils
    assert open_places.min() > 0.9, open_places
    assert creases.max() < 0.85 and creases.max() < open_places.min() - 0.1, creases


def test_occlusion_does_not_depend_on_the_frame(ict):
    verts, normals = _mean_head(ict)
    rotation = head_rotation(30.0, 10.0, -5.0)
    here = vertex_occlusion(ict, verts, normals)
    there = vertex_occlusion(ict, verts @ rotation.T + [0.0, 0.0, -0.6], normals @ rotation.T)
    face = slice(0, ict.face_vertex_count)
    assert np.median(np.abs(here[face] - there[face])) < 0.05  # only the directions' sampling differs


def test_light_bouncing_in_a_crease_lifts_red_skin_more_than_blue():
    ao = np.linspace(0.0, 1.0, 11)
    reach = effective_occlusion(ao, np.array([0.6, 0.4, 0.3]))
    assert reach.shape == (11, 3)
    assert np.all(np.diff(reach, axis=0) >= 0) and np.allclose(reach[0], 0) and np.allclose(reach[-1], 1)
    assert np.all(reach >= ao[:, None] - 1e-12) and np.all(reach[:, 0] >= reach[:, 2])
    assert np.allclose(effective_occlusion(ao, np.zeros(3)), ao[:, None], atol=0.02)  # black: no bounce


def _occluded_error(ict, baked: np.ndarray, truth: np.ndarray, ao: np.ndarray) -> tuple[float, float]:
    """Median log-luminance error (baked / true, after the open skin's exposure) over the face tile's skin
    texels in creases (occlusion < 0.75), and over the open ones (> 0.9)."""
    uvm = uv_map(ict, 0, baked.shape[0])
    skin = ((vertex_regions(ict) == SKIN) & (np.arange(ict.vertex_count) < ict.face_vertex_count)).astype(float)
    keep = (uvm.blend @ skin) > 0.99
    texel_ao = (uvm.blend @ ao)[keep]
    got = sh.SRGB8_TO_LINEAR[baked.reshape(-1, 3)[uvm.texels[keep]]] @ sh.LUMINANCE
    want = sh.SRGB8_TO_LINEAR[truth.reshape(-1, 3)[uvm.texels[keep]]] @ sh.LUMINANCE
    seen = (got > 0.01) & (want > 0.01)
    ratio = np.log(got[seen] / want[seen])
    ratio -= np.median(ratio[texel_ao[seen] > 0.9])
    return float(np.median(ratio[texel_ao[seen] < 0.75])), float(np.median(np.abs(ratio[texel_ao[seen] > 0.9])))


def test_delighting_divides_the_heads_own_occlusion_out(ict):
    """A render whose creases get less light (ambient occlusion) is delit to an albedo as bright in the creases
    as the truth; without the occlusion term the creases stay painted darker."""
    camera = Camera(900.0, (256.0, 256.0), (512, 512))
    rotation = head_rotation(10.0, 0.0, 0.0)
    verts = ict.vertices() @ rotation.T + np.array([0.0, 0.0, -0.6])
    truth = np.zeros((256, 256, 3), np.uint8)
    truth[:] = (205, 150, 125)
    textures = {i: truth for i, m in enumerate(ict.materials) if m.projected}
    light = sh.rotate(sh.directional([0.2, 0.3, 1.0], strength=0.6, ambient=0.4), rotation)
    image, _ = render_lit(ict, verts, camera, textures, light, max_side=512, occlusion=True)
    view = PhotoView.build(ict, image, camera, verts)
    ao = vertex_occlusion(ict, verts, view.normals)
    crease = {}
    for on in (False, True):
        lit = delight(ict, view, rotation, occlusion=on)
        crease[on], open_error = _occluded_error(ict, bake_textures(ict, [replace(view, rgb=lit.albedo_rgb)], 256)[0],
                                                 truth, ao)
        assert open_error < 0.05 or not on  # without the term the light estimate itself is a little off
    assert crease[False] < -0.05, crease  # painted darker than the skin is
    assert abs(crease[True]) < 0.5 * abs(crease[False]), crease


def test_reconstruct_job_divides_occlusion_out_only_when_asked(engine, ict, ict_path, tmp_path):
    """The job's ``occlusion`` option (``likeness reconstruct --occlusion``, the protocol's ``occlusion``) reaches the
    delighting and the manifest (where ``likeness relight`` reads it); the default leaves the albedo as before."""
    import cv2

    from likeness.service.bundle import read_bundle
    from likeness.service.cli import astronaut_photo
    from likeness.service.jobs import JOBS
    from likeness.service.pipeline import ReconstructRequest

    uvm = uv_map(ict, 0, 256)
    lum = {}
    for on in (False, True):
        out = tmp_path / f"astronaut_{on}"
        if on:  # through the protocol's job, as the add-on sends it
            JOBS["reconstruct"](engine, {"photos": [str(astronaut_photo())], "output": str(out), "texture_size": 256,
                                         "model": str(ict_path), "occlusion": True}, lambda *a: None, lambda: False)
        else:
            engine.reconstruct(ReconstructRequest([str(astronaut_photo())], str(out), 256, str(ict_path)))
        manifest, _ = read_bundle(out)
        assert manifest["photos"][0]["light"]["occlusion"] is on
        albedo = cv2.cvtColor(cv2.imread(str(out / "textures" / "skin_face_albedo.png")), cv2.COLOR_BGR2RGB)
        lum[on] = sh.SRGB8_TO_LINEAR[albedo.reshape(-1, 3)[uvm.texels]] @ sh.LUMINANCE
    assert np.abs(lum[True] - lum[False]).max() > 0.01  # the option reached the delighting


def test_bad_geometry_is_refused_clearly(ict):
    import pytest

    verts, normals = _mean_head(ict)
    broken = verts.copy()
    broken[10] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        vertex_occlusion(ict, broken, normals)
    with pytest.raises(ValueError, match="coincide"):
        vertex_occlusion(ict, np.zeros_like(verts), normals)
    with pytest.raises(ValueError, match="vertices and normals"):
        vertex_occlusion(ict, verts[:100], normals[:100])
