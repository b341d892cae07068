"""MediaPipe's face-mesh network rebuilt in torch (likeness.learned.meshnet): the real network from the Face
Landmarker bundle in ../shared, checked against MediaPipe itself; damaged files refused."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from likeness.errors import BadInput
from conftest import SHARED

try:
    import torch
except ImportError:
    torch = None

TASK = SHARED / "models" / "mediapipe_face_landmarker" / "face_landmarker.task"
needs_task = pytest.mark.skipif(torch is None or not TASK.is_file(),
                                reason="needs torch and MediaPipe's Face Landmarker bundle")


def _crop_points(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Photo pixels → the face crop's pixels (the inverse of features.face_crop's mapping)."""
    from likeness.learned.features import CROP, CROP_SCALE, FACE_POINTS, similarity_transform

    scale, rot, offset = similarity_transform(template, points[:FACE_POINTS, :2])
    a = scale * rot / CROP_SCALE
    shift = offset - a @ np.array([CROP / 2.0, CROP / 2.0])
    return np.linalg.solve(a, (points[:, :2] - shift).T).T


@pytest.fixture(scope="module")
def astronaut(ict):
    """The astronaut portrait's MediaPipe points (photo pixels), its face crop and the crop template."""
    from likeness.capture.images import load_photo
    from likeness.capture.landmarks import LandmarkDetector
    from likeness.learned.features import crop_template, face_crop
    from likeness.model.correspondence import load_table
    from likeness.service.cli import astronaut_photo

    rgb = load_photo(astronaut_photo()).rgb
    found = LandmarkDetector(max_faces=1).detect(rgb)
    template = crop_template(load_table().points(ict.neutral.astype(np.float64)))
    return found.points_px, face_crop(rgb, found.points_px, template), template


@needs_task
def test_the_rebuilt_network_finds_the_points_mediapipe_finds(astronaut):
    """Run to its landmark output on the astronaut's face crop, the torch graph puts the 468 face points where
    MediaPipe (the same network under TFLite, on its own crop of the photo) put them: within 4 % of the distance
    between the eyes. A wrong padding, weight layout or activation anywhere in the graph moves them far more."""
    from likeness.learned.features import CROP, CROP_SCALE, FACE_POINTS
    from likeness.learned.meshnet import CROP_FRACTION, INPUT, backbone_input, load_meshnet, read_graph

    found, crop, template = astronaut
    with zipfile.ZipFile(TASK) as z:
        output = read_graph(z.read("face_landmarks_detector.tflite"))["outputs"]
    net = load_meshnet(TASK, wanted=output[:1])
    with torch.no_grad():
        points = net(backbone_input(torch.from_numpy(crop[None])))[0].reshape(-1, 3)[:, :2].numpy()
    lo = (INPUT - INPUT * CROP_FRACTION) / 2
    ours = (points[:FACE_POINTS] - lo) * CROP / (INPUT * CROP_FRACTION)
    theirs = _crop_points(found, template)[:FACE_POINTS]
    error = np.linalg.norm(ours - theirs, axis=1).mean() / CROP_SCALE
    assert error < 0.04, error


@needs_task
def test_the_backbone_features_follow_the_face_not_the_noise(astronaut):
    """The feature vector has its documented size, is finite, and the astronaut's face differs from its mirror
    image (her face is not symmetric, nor is her pose) more than from itself with a little noise added."""
    from likeness.learned.meshnet import backbone_features, backbone_size, load_meshnet

    face = astronaut[1]
    noisy = np.clip(face + np.random.default_rng(0).normal(0, 2, face.shape), 0, 255).astype(np.uint8)
    net = load_meshnet(TASK)
    f = backbone_features(net, torch.from_numpy(np.stack([face, noisy, face[:, ::-1].copy()]))).numpy()
    assert f.shape == (3, backbone_size()) and np.isfinite(f).all()
    assert np.abs(f[0] - f[1]).mean() < 0.5 * np.abs(f[0] - f[2]).mean()


@needs_task
def test_each_input_side_gives_its_size_and_the_traced_network_the_same_numbers(astronaut):
    """At each input side the backbone may run at, the features have the size :func:`backbone_size` states, and
    the traced network :func:`backbone_features` runs gives the numbers of the plain module, for another batch
    size than the one it was traced with; an unsupported side is refused."""
    from torch.nn import functional as F

    from likeness.learned.meshnet import SIDES, backbone_features, backbone_input, backbone_size, load_meshnet

    net = load_meshnet(TASK)
    crops = torch.from_numpy(np.stack([astronaut[1], astronaut[1][::-1].copy(), astronaut[1][:, ::-1].copy()]))
    for side in SIDES:
        f = backbone_features(net, crops[:1], side)
        f3 = backbone_features(net, crops, side)
        with torch.no_grad():
            maps = net(backbone_input(crops, side))
        plain = torch.cat([m.permute(0, 2, 3, 1).flatten(1) for m in maps[:-1]]
                          + [F.avg_pool2d(maps[-1], 2).permute(0, 2, 3, 1).flatten(1)], 1)
        assert f.shape == (1, backbone_size(side)) and f3.shape == (3, backbone_size(side))
        assert torch.allclose(f3, plain, atol=1e-4) and torch.allclose(f3[:1], f, atol=1e-4)
    assert len({backbone_size(side) for side in SIDES}) == len(SIDES)
    with pytest.raises(BadInput, match="px"):
        backbone_features(net, crops, 200)


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_damaged_networks_are_refused(tmp_path):
    from likeness.learned.meshnet import _build, load_meshnet

    text = tmp_path / "net.tflite"
    text.write_bytes(b"not a network at all")
    with pytest.raises(BadInput):
        load_meshnet(text)
    empty = tmp_path / "empty.task"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("face_detector.tflite", b"")
    with pytest.raises(BadInput, match="face-mesh"):
        load_meshnet(empty)
    if TASK.is_file():
        with zipfile.ZipFile(TASK) as z:
            data = z.read("face_landmarks_detector.tflite")
        cut = tmp_path / "cut.tflite"
        cut.write_bytes(data[:len(data) // 3])
        with pytest.raises(BadInput):
            load_meshnet(cut)
    graph = {"tensors": [{"shape": (1, 4, 4, 3), "value": None}, {"shape": (1, 4, 4, 3), "value": None}],
             "ops": [{"code": 99, "inputs": [0], "outputs": [1], "options": {}}], "inputs": [0], "outputs": [1]}
    with pytest.raises(BadInput, match="operator"):
        _build()(graph, [1])


@needs_task
def test_an_encoder_learns_from_the_backbone_and_reads_photos_through_it(tmp_path, ict, astronaut):
    """Trained where only the backbone's features tell the weights, the network learns them (so the training
    reads that branch); saved, it loads with the real face-mesh network from MediaPipe's bundle and reads a face
    crop through it at the input side it was trained at (192 px here); a checkpoint made for another network file,
    or without the bundle, or whose feature count does not fit its side, is refused."""
    from likeness.learned import features as feats
    from likeness.learned.meshnet import backbone_features, backbone_size, load_meshnet
    from likeness.learned.runtime import ExpressionEncoder
    from likeness.learned.train import save, train

    rng = np.random.default_rng(0)
    n = 256
    y = np.where(rng.random((n, 53)) < 0.15, rng.uniform(0.2, 1.0, (n, 53)), 0.0).astype(np.float32)
    x = rng.normal(0, 0.05, (n, feats.FEATURES)).astype(np.float32)  # the landmarks tell nothing here
    b = rng.normal(0, 0.05, (n, backbone_size(192))).astype(np.float32)
    b[:, :53] += y
    angles = np.zeros((n, 3), np.float32)
    args = dict(seed=1, width=32, blocks=1, log=lambda *_: None, backbone=(b, b))
    before, net = (train(x, np.zeros((n, 1, 1, 3), np.uint8), y, angles, e, **args) for e in (0, 10))

    def error(model) -> float:
        with torch.no_grad():
            raw = model(torch.from_numpy(x), torch.from_numpy(b))[0].clamp(0, 1).numpy()
        return float(np.abs(raw - y)[y > 0].mean())

    assert error(net) < 0.6 * error(before)

    mesh = load_meshnet(TASK)
    path = tmp_path / "enc.safetensors"
    meta = {"width": 32, "blocks": 1, "backbone": backbone_size(192), "backbone_sha256": mesh.digest,
            "backbone_side": 192}
    save(net, feats.mean_template(rng.normal(0, 1, (5, 478, 3))), rng.normal(0, 1, (468, 2)), ict.expression_names,
         path, meta)
    encoder = ExpressionEncoder(path, ict.expression_names, "cpu", mirrored=False, task=TASK)
    crops = np.stack([astronaut[1], astronaut[1][:, ::-1]])
    weights, turn = encoder.predict(x[:2], crops)
    with torch.no_grad():
        raw = encoder.net(torch.from_numpy(x[:2]), backbone_features(mesh, torch.from_numpy(crops.copy()), 192))[0]
    assert weights.shape == (2, 53) and turn.shape == (2, 3)
    np.testing.assert_allclose(weights, raw.clamp(0, 1).numpy(), atol=1e-5)

    save(net, encoder.template, encoder.crop_template, ict.expression_names, tmp_path / "other.safetensors",
         dict(meta, backbone_sha256="0" * 64))
    with pytest.raises(BadInput, match="another face-mesh network"):
        ExpressionEncoder(tmp_path / "other.safetensors", ict.expression_names, "cpu", task=TASK)
    with pytest.raises(BadInput, match="Face Landmarker bundle"):
        ExpressionEncoder(path, ict.expression_names, "cpu")
    save(net, encoder.template, encoder.crop_template, ict.expression_names, tmp_path / "side.safetensors",
         dict(meta, backbone_side=256))
    with pytest.raises(BadInput, match="at 256 px"):
        ExpressionEncoder(tmp_path / "side.safetensors", ict.expression_names, "cpu", task=TASK)
