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
from likeness.geometry import head_rotation
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
    shape = slice(0, 478 * 3)
    assert a.shape == (feats.FEATURES,) and np.allclose(a[shape], b[shape], atol=1e-5)
    assert not np.allclose(a[478 * 3:478 * 3 + 9], b[478 * 3:478 * 3 + 9])  # the rotation comes along
    assert a[-1] == 1.0 and a[478 * 3 + 9 + 17] == np.float32(0.5)  # jawOpen is ARKit's 18th shape
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
    from likeness.camera import Camera
    from likeness.landmarks import LandmarkDetector
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


def _checkpoint(path: Path, names: tuple[str, ...], epochs: int = 1) -> Path:
    from likeness.learned.train import save, train

    x, crops, y, angles = _toy(64)
    net = train(x, crops, y, angles, epochs, seed=1, width=32, blocks=1, log=lambda *_: None)
    rng = np.random.default_rng(1)
    save(net, feats.mean_template(_faces(5, rng)), rng.normal(0, 1, (468, 2)), names, path,
         {"width": 32, "blocks": 1})
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
    from likeness.images import load_photo
    from likeness.pipeline import Engine
    from skimage import data
    from PIL import Image

    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo_path)
    photo = load_photo(photo_path)
    monkeypatch.setenv("LIKENESS_EXPRESSION_ENCODER", str(_checkpoint(tmp_path / "enc.safetensors",
                                                                       ict.expression_names)))
    learned, _ = Engine(use_blendshapes=False).analyse([photo], str(ict_path))
    monkeypatch.delenv("LIKENESS_EXPRESSION_ENCODER")
    plain, _ = Engine(use_blendshapes=False).analyse([photo], str(ict_path))  # off by default
    assert "expression_encoder" in learned.photos[0].evidence
    assert "expression_encoder" not in plain.photos[0].evidence
    assert not np.allclose(learned.photos[0].expression, plain.photos[0].expression)


def test_the_core_runs_without_torch(ict_path):
    """With torch unimportable the backend still fits (no encoder) and imports nothing learned at start-up."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import likeness.cli, likeness.pipeline, likeness.track, likeness.serve\n"
            "assert not any(m.startswith('likeness.learned') for m in sys.modules), 'learned imported early'\n"
            "from likeness.pipeline import Engine\n"
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
    from likeness.camera import Camera
    from likeness.landmarks import LandmarkDetector
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

    from likeness.camera import Camera
    from likeness.correspondence import load_table
    from likeness.fit import FitSettings, LandmarkBasis, Observation, fit_landmarks

    settings = FitSettings(sliding_contour=False, pose_prior=1e6)
    basis = LandmarkBasis.build(ict, load_table(), settings)
    basis = replace(basis, weights=basis.weights * 1e-6)
    rot, centre = head_rotation(10, 0, 0), basis.base.mean(0)
    trans = np.array([0.0, 0.0, -0.6]) - rot @ centre
    camera = Camera(700.0, (256.0, 256.0), (512, 512))
    px, depth = camera.project(basis.base @ rot.T + trans)
    prior = head_rotation(10, -8, 4)
    fit = fit_landmarks(basis, [Observation(px, depth - depth.mean(), camera, rotation_prior=prior)], settings)
    assert np.degrees(np.arccos(np.clip((np.trace(fit.photos[0].rotation @ prior.T) - 1) / 2, -1, 1))) < 0.5
