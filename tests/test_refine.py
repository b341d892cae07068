"""Refinement against the photo: the edges of the rendered openings pull the fit toward what the image shows."""

from dataclasses import replace

import numpy as np
import pytest

from likeness.model.camera import Camera
from likeness.model.correspondence import load_table
from likeness.capture.fit import FitSettings, LandmarkBasis, Observation, PhotoFit, fit_landmarks
from likeness.model.geometry import head_rotation
from likeness.appearance.light import linear_to_srgb8
from likeness.capture.refine import (Edges, RefineSettings, find_edges, fold_identity, refine, with_edges,
                             working_window)
from likeness.appearance.views import rasterize_head

SETTINGS = FitSettings(sliding_contour=False)
CAMERA = Camera(700.0, (320.0, 320.0), (640, 640))
ROTATION = head_rotation(12.0, -5.0, 0.0)
TRANSLATION = np.array([0.0, 0.02, -0.55])


@pytest.fixture(scope="module")
def basis(ict):
    return LandmarkBasis.build(ict, load_table(), SETTINGS)


def flat_render(model, identity, expression) -> np.ndarray:
    """The posed head in flat material colours over a grey backdrop: (H,W,3) uint8 sRGB."""
    verts = model.vertices(identity, expression).astype(np.float64) @ ROTATION.T + TRANSLATION
    raster = rasterize_head(model, verts, CAMERA, max_side=640)
    colours = np.array([m.base_color[:3] for m in model.materials])
    image = np.full(raster.triangle.shape + (3,), 0.3)
    hit = raster.triangle >= 0
    image[hit] = colours[model.face_material[model.triangle_face[raster.triangle[hit]]]]
    return linear_to_srgb8(image)


def observation(basis, identity, expression) -> Observation:
    px, depth = CAMERA.project(basis.points(identity, expression) @ ROTATION.T + TRANSLATION)
    return Observation(px, (depth - depth.mean()) * CAMERA.focal_px / depth.mean(), CAMERA)


def weights(model, **named) -> np.ndarray:
    w = np.zeros(len(model.expression_names))
    for name, value in named.items():
        w[model.expression_names.index(name)] = value
    return w


def test_fold_identity_keeps_the_landmarks(ict, basis):
    identity = np.random.default_rng(3).normal(size=basis.identity.shape[0])
    expression = weights(ict, jawOpen=0.4, eyeBlink_L=0.5)
    fixed = fold_identity(basis, identity)
    assert fixed.identity.shape[0] == 0
    np.testing.assert_allclose(fixed.points(np.zeros(0), expression), basis.points(identity, expression), atol=1e-12)


def test_edge_points_lie_on_the_surface(ict, basis):
    identity = np.zeros(basis.identity.shape[0])
    ids = ict.triangles[[100, 2000, 5000]]
    bary = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5]])
    edges = Edges(ids, bary, np.zeros((3, 2)))
    expression = weights(ict, mouthSmile_L=0.7)
    obs = observation(basis, identity, expression)
    extended, observed = with_edges(ict, ict.vertices(identity), fold_identity(basis, identity), obs, edges, 0.5)
    surface = np.einsum("nk,nkd->nd", bary, ict.vertices(identity, expression)[ids].astype(np.float64))
    np.testing.assert_allclose(extended.points(np.zeros(0), expression)[-3:], surface, atol=1e-6)
    assert len(observed.points_px) == len(basis.base) + 3 and extended.weights[-1] == 0.5


def test_edges_pull_the_jaw_to_what_the_photo_shows(ict, basis):
    """Landmarks that under-read an open jaw (0.25, as MediaPipe's lag behind strong expressions) against a
    photo with the jaw at 0.6: the refined fit opens the jaw further, toward the photo."""
    identity = np.zeros(basis.identity.shape[0])
    shown, lagging = weights(ict, jawOpen=0.6), weights(ict, jawOpen=0.25)
    image = flat_render(ict, identity, shown)
    obs = observation(basis, identity, lagging)
    fit = fit_landmarks(basis, [obs], SETTINGS)
    before = fit.photos[0].expression[ict.expression_names.index("jawOpen")]
    window = working_window(image, obs, RefineSettings())
    edges = find_edges(ict, ict.vertices(fit.identity), fit.photos[0], obs, window, RefineSettings())
    assert len(edges) > 20
    refined = refine(ict, basis, [obs], [image], fit, SETTINGS)
    after = refined.photos[0].expression[ict.expression_names.index("jawOpen")]
    assert before < 0.35
    assert after > before + 0.1
    np.testing.assert_array_equal(refined.identity, fit.identity)
    # the photo's figures of fit are the landmarks' residuals at the refined pose: worse, as these landmarks lag
    assert refined.photos[0].rmse_iod > fit.photos[0].rmse_iod
    assert "photo_edges" in refined.photos[0].evidence


def test_eye_edges_close_the_lid_the_photo_closes(ict, basis):
    """With the eyes' borders switched on, a lid the photo shows closing (eyeBlink_L 0.7) against landmarks that
    say 0.2 closes in the refined fit, and the other eye stays open."""
    identity = np.zeros(basis.identity.shape[0])
    image = flat_render(ict, identity, weights(ict, eyeBlink_L=0.7))
    obs = observation(basis, identity, weights(ict, eyeBlink_L=0.2))
    fit = fit_landmarks(basis, [obs], SETTINGS)
    refined = refine(ict, basis, [obs], [image], fit, SETTINGS, RefineSettings(openings=("eyes",)))
    left, right = (ict.expression_names.index(n) for n in ("eyeBlink_L", "eyeBlink_R"))
    assert refined.photos[0].expression[left] > fit.photos[0].expression[left] + 0.2
    assert refined.photos[0].expression[right] < 0.2


def test_a_photo_without_edges_keeps_its_fit(ict, basis):
    identity = np.zeros(basis.identity.shape[0])
    obs = observation(basis, identity, weights(ict))
    fit = fit_landmarks(basis, [obs], SETTINGS)
    blank = np.full((640, 640, 3), 128, np.uint8)
    refined = refine(ict, basis, [obs], [blank], fit, SETTINGS)
    np.testing.assert_allclose(refined.photos[0].expression, fit.photos[0].expression)
    np.testing.assert_allclose(refined.photos[0].rotation, fit.photos[0].rotation)
    assert isinstance(refined.photos[0], PhotoFit) and "photo_edges" not in refined.photos[0].evidence


def test_window_is_empty_outside_the_photo(ict, basis):
    """A face cut by the photo's edge: the working window holds NaN beyond it, the photo's colours inside it, and
    every edge found lies inside the photo."""
    identity = np.zeros(basis.identity.shape[0])
    expression = weights(ict, jawOpen=0.5)
    obs = observation(basis, identity, expression)
    left = int(obs.points_px[:468, 0].mean())  # cut the photo through the middle of the face
    image = flat_render(ict, identity, expression)[:, left:]
    cut = replace(obs, points_px=obs.points_px - [left, 0],
                  camera=Camera(CAMERA.focal_px, (CAMERA.principal_point[0] - left, CAMERA.principal_point[1]),
                                (640 - left, 640)))
    window = working_window(image, cut, RefineSettings())
    outside = ~np.isfinite(window.image).all(-1)
    assert outside[:, :5].all() and np.isfinite(window.image[:, -5:]).all()
    fit = fit_landmarks(basis, [cut], SETTINGS)
    edges = find_edges(ict, ict.vertices(fit.identity), fit.photos[0], cut, window, RefineSettings())
    assert len(edges) > 0 and (edges.targets_px[:, 0] >= 0).all()


def test_engine_refines_a_real_photo_on_request(engine, ict_path):
    """The product path: MediaPipe, the landmark fit, then the refinement against the photo (``refine=True``);
    identity is the landmark fit's, the weights stay in [0, 1], and the evidence says the photo's edges were used."""
    from likeness.capture.images import load_photo

    from conftest import dev_photo

    photo = load_photo(dev_photo("dev_001_london_002_08.jpg"))
    plain, _ = engine.analyse([photo], str(ict_path))
    refined, _ = engine.analyse([photo], str(ict_path), refine=True)
    np.testing.assert_allclose(refined.identity, plain.identity)
    weights = refined.photos[0].expression
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    assert not np.allclose(weights, plain.photos[0].expression)
    assert "photo_edges" in refined.photos[0].evidence and "photo_edges" not in plain.photos[0].evidence
