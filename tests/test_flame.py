"""FLAME with the user's files: install through the restricted unpickler, skinning, the bridge to ARKit, and the
``reconstruct --model flame --encoder smirk`` job. Real FLAME files are not available here: the tests write
synthetic ones (tests/flame_synthetic.py)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from flame_synthetic import SHIFT, TILT, write_ict_flame, write_random_flame
from likeness.service import cli
from likeness.model import flame
from likeness.model.flame_head import _fallback_uv, head_model, key_names


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _install(capsys, source) -> tuple[int, str]:
    code = cli.main(["models", "install", "flame", "--from", str(source)])
    return code, capsys.readouterr().err


def test_install_flame_pickle_with_chumpy_arrays(tmp_path, data_dir, capsys):
    pkl = write_random_flame(tmp_path / "FLAME2020")
    code, err = _install(capsys, pkl)
    assert code == 0 and "5023 vertices, 300 shape and 100 expression modes, 5 joints" in err
    assert "not found: FLAME_texture.npz" in err  # optional files are reported
    installed = data_dir / "models" / "flame"
    assert sorted(p.name for p in installed.iterdir()) == ["LICENSE", "flame_model.npz"]
    model = flame.load()
    assert model.template.shape == (5023, 3) and model.shapedirs.shape == (5023, 3, 300)
    assert model.exprdirs.shape == (5023, 3, 100) and model.posedirs.shape == (36, 5023 * 3)
    assert model.parents.tolist() == [-1, 0, 1, 1, 1] and model.faces.shape == (9976, 3)
    assert "NON-COMMERCIAL" in model.license_text
    with np.load(installed / "flame_model.npz", allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_flame_pickle_that_runs_code_is_refused(tmp_path, data_dir, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    pkl = tmp_path / "generic_model.pkl"
    pkl.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "f": Exploit()}, protocol=2))
    code, err = _install(capsys, pkl)
    assert code == 2 and "asks to run posix.system" in err and "Traceback" not in err
    assert not marker.exists() and not (data_dir / "models" / "flame").exists()


@pytest.mark.parametrize("key, value, message", [
    ("shapedirs", None, "has no 'shapedirs'"),
    ("posedirs", np.zeros((5023, 3, 35)), "'posedirs' has shape [5023, 3, 35]"),
    ("weights", np.full((5023, 5), np.nan), "'weights' has shape"),
])
def test_flame_pickle_with_a_bad_key_is_refused_naming_it(tmp_path, data_dir, capsys, key, value, message):
    from likeness.model.safe_pickle import load

    from flame_synthetic import chumpy_dumps

    pkl = write_random_flame(tmp_path / "f")
    data = load(pkl)
    if value is None:
        del data[key]
    else:
        data[key] = value
    pkl.write_bytes(chumpy_dumps(data))
    code, err = _install(capsys, pkl)
    assert code == 2 and message in err
    assert not (data_dir / "models" / "flame").exists()


@pytest.fixture(scope="module")
def ict_flame(ict, tmp_path_factory):
    """The ICT-derived FLAME (modes with known ARKit meaning), installed; and its bridge to ICT."""
    from likeness.service import models
    from likeness.model.correspondence import load_table
    from likeness.model.flame_bridge import build

    root = tmp_path_factory.mktemp("ictflame")
    arrays = write_ict_flame(root / "src", ict)
    old = os.environ.get("LIKENESS_DATA_DIR")
    os.environ["LIKENESS_DATA_DIR"] = str(root / "data")
    try:
        models.install("flame", str(root / "src"), log=lambda m: None)
        model = flame.load()
    finally:
        if old is None:
            os.environ.pop("LIKENESS_DATA_DIR")
        else:
            os.environ["LIKENESS_DATA_DIR"] = old
    return model, build(model, ict, load_table()), arrays, root


def test_skinning_moves_the_jaw_and_eyes_about_their_joints(ict_flame):
    model, _, arrays, _ = ict_flame
    rest = model.vertices()
    assert np.allclose(model.vertices(pose=np.zeros(15)), rest)
    open_jaw = model.vertices(pose=np.r_[0, 0, 0, 0, 0, 0, 0.3, 0, 0]) - rest
    jaw_w = model.weights[:, 2]
    assert np.abs(open_jaw[jaw_w == 0]).max() < 1e-6  # what the jaw does not hold stays
    chin = np.argmin(np.where(jaw_w > 0.9, model.template[:, 1], np.inf))
    assert open_jaw[chin, 1] < -0.005  # a positive rotation about X opens the mouth: the chin goes down
    turned = model.vertices(pose=np.r_[0, 0.4, 0, 0, 0, 0, 0, 0, 0])  # the global joint turns everything rigidly
    joint = model.joints(rest)[0]
    c, s = np.cos(0.4), np.sin(0.4)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    assert np.allclose(turned, (rest - joint) @ rot.T + joint, atol=1e-9)
    eye = model.vertices(pose=np.r_[np.zeros(9), 0, 0.3, 0, 0, 0, 0]) - rest
    assert np.abs(eye[model.weights[:, 3] == 1]).max() > 1e-3 and np.abs(eye[model.weights[:, 3] == 0]).max() < 1e-6


def test_bridge_finds_the_flame_head_in_icts_frame(ict_flame):
    _, bridge, arrays, _ = ict_flame
    assert bridge.scale == pytest.approx(1.0, abs=0.01)
    c, s = np.cos(TILT), np.sin(TILT)
    assert bridge.rotation == pytest.approx(np.array([[1, 0, 0], [0, c, s], [0, -s, c]]), abs=0.02)  # ≈ 1°
    head = np.arange(arrays["head_count"])
    assert np.median(bridge.gap[head]) < 1e-3 and len(bridge.carriers) > 0.8 * len(head)
    assert np.abs(bridge.translation + bridge.rotation @ SHIFT).max() < 0.003


def _top(bridge, weights) -> list[str]:
    return [bridge.names[i] for i in np.argsort(-weights)]


def test_bridge_maps_jaw_open_to_jawOpen(ict_flame):
    model, bridge, arrays, _ = ict_flame
    rest = model.vertices()
    weights = bridge.arkit(model.vertices(pose=np.r_[np.zeros(6), arrays["jaw_open_angle"], 0, 0]) - rest)
    assert _top(bridge, weights)[0] == "jawOpen" and weights[bridge.names.index("jawOpen")] > 0.6
    assert np.allclose(bridge.arkit(np.zeros_like(rest)), 0, atol=1e-6)


@pytest.mark.parametrize("lids, side", [([1.0, 0.0], "L"), ([0.0, 1.0], "R")])
def test_bridge_maps_a_one_sided_lid_to_that_sides_eyeBlink(ict_flame, lids, side):
    model, bridge, _, _ = ict_flame
    weights = dict(zip(bridge.names, bridge.arkit(model.vertices(eyelids=lids) - model.vertices())))
    other = "R" if side == "L" else "L"
    assert max(weights, key=weights.get) == f"eyeBlink_{side}"
    assert weights[f"eyeBlink_{side}"] > 0.7 and weights[f"eyeBlink_{other}"] < 0.1


def test_bridge_reads_expression_modes_as_the_shapes_they_mix(ict_flame):
    model, bridge, arrays, _ = ict_flame
    truth = np.zeros(len(bridge.names))
    truth[bridge.names.index("mouthSmile_L")] = 0.8
    weights = bridge.arkit(model.vertices(expression=arrays["mix"] @ truth) - model.vertices())
    assert _top(bridge, weights)[0] == "mouthSmile_L" and weights[bridge.names.index("mouthSmile_R")] < 0.1


def test_head_model_keys_and_fallback_uvs(ict_flame):
    model, bridge, _, _ = ict_flame
    head = head_model(model, bridge.landmarks_68)
    assert head.non_commercial and head.expression_basis.shape == (len(key_names(model)), model.vertex_count, 3)
    assert head.eyeball_vertices["L"][1] - head.eyeball_vertices["L"][0] > 0
    assert model.template[slice(*head.eyeball_vertices["L"]), 0].mean() > 0  # L = the subject's left, +X
    uv, faces_uv = _fallback_uv(model.template, model.faces.astype(np.int64))
    assert uv.min() >= 0 and uv.max() <= 1 and faces_uv.max() < len(uv)
    spread = np.ptp(uv[faces_uv], axis=1).max(1)
    assert np.median(spread) < 0.05 and (spread > 0.5).mean() < 0.01  # the seam's triangles got their own UVs


def test_reconstruct_flame_with_smirk(ict_flame, tmp_path, monkeypatch, capsys, ict_path):
    """The whole job on a dev photo with the synthetic FLAME and a random SMIRK checkpoint whose heads read the mean
    neutral head: the pose comes from the landmarks through the bridge, and the FLAME bundle is valid."""
    pytest.importorskip("torch")
    from flame_synthetic import write_smirk_checkpoint
    from likeness.service.bundle import read_bundle
    from shared_paths import DEV_IMAGES

    photo = DEV_IMAGES / "dev_000_london_002_03.jpg"
    if not photo.is_file():
        pytest.skip("no dev photos")
    _, _, _, root = ict_flame
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("LIKENESS_ICT_MODEL", str(ict_path))
    monkeypatch.setenv("LIKENESS_SMIRK", str(write_smirk_checkpoint(tmp_path / "SMIRK_em1.pt", neutral=True)))
    out = tmp_path / "bundle"
    code = cli.main(["reconstruct", "--model", "flame", "--encoder", "smirk", str(photo), "-o", str(out),
                     "--texture-size", "128", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    manifest, arrays = read_bundle(out)
    assert manifest["head_model"]["non_commercial"] and manifest["smirk"]["non_commercial"]
    record = manifest["photos"][0]
    assert record["fit"]["evidence"] == ["smirk", "landmarks"] and record["fit"]["landmark_rmse_iod"] < 0.05
    assert abs(record["pose"]["yaw_deg"]) < 15 and set(record["arkit"]) == set(bridge_names(ict_path))
    assert set(record["smirk"]) == {"pose_params", "cam", "expression_params", "eyelid_params", "jaw_params"}
    assert arrays["expression_deltas"].shape[0] == len(manifest["expressions"])
    assert (out / "textures" / "skin_albedo.png").is_file()
    code = cli.main(["reconstruct", "--model", "flame", str(photo), "-o", str(tmp_path / "b2")])
    assert code == 2 and "needs --encoder smirk" in capsys.readouterr().err


def bridge_names(ict_path) -> list[str]:
    from likeness.model.headmodel import load_ict

    return list(load_ict(ict_path).expression_names)


def test_ict_fit_takes_smirks_reading_as_evidence(ict_flame, ict_path, tmp_path, monkeypatch):
    """``--encoder smirk`` on the ICT head: SMIRK's reading, through FLAME and the bridge, is the fit's expression
    evidence (``fit.evidence`` lists ``smirk``)."""
    pytest.importorskip("torch")
    from flame_synthetic import write_smirk_checkpoint
    from likeness.capture.images import load_photo
    from likeness.service.pipeline import Engine
    from shared_paths import DEV_IMAGES

    photo = DEV_IMAGES / "dev_000_london_002_03.jpg"
    if not photo.is_file():
        pytest.skip("no dev photos")
    _, _, _, root = ict_flame
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("LIKENESS_SMIRK", str(write_smirk_checkpoint(tmp_path / "SMIRK_em1.pt", neutral=True)))
    engine = Engine(use_blendshapes=False, use_encoder="smirk", device="cpu")
    result, _ = engine.analyse([load_photo(photo)], str(ict_path))
    fit = result.photos[0]
    assert "smirk" in fit.evidence and "landmarks" in fit.evidence
    assert json.dumps(list(fit.evidence))


def test_flame_job_without_flame_or_smirk_installed_says_what_to_install(tmp_path, data_dir, capsys, ict_path,
                                                                         monkeypatch):
    from shared_paths import DEV_IMAGES

    monkeypatch.setenv("LIKENESS_ICT_MODEL", str(ict_path))
    monkeypatch.delenv("LIKENESS_SMIRK", raising=False)
    photo = DEV_IMAGES / "dev_000_london_002_03.jpg"
    args = ["reconstruct", "--model", "flame", "--encoder", "smirk", str(photo), "-o", str(tmp_path / "b")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "FLAME is not installed" in err and "flame.is.tue.mpg.de" in err
    write_random_flame(tmp_path / "f")
    assert cli.main(["models", "install", "flame", "--from", str(tmp_path / "f")]) == 0
    capsys.readouterr()
    monkeypatch.setattr("likeness.service.flame_job.build",
                        lambda *a: pytest.fail("SMIRK is checked before the bridge"))
    assert cli.main(args) == 2
    assert "SMIRK's weights are not installed" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_landmark_embedding_in_smirks_assets_layout_drives_the_alignment(ict, tmp_path, data_dir, capsys):
    """SMIRK's layout (assets/FLAME2020/generic_model.pkl beside assets/landmark_embedding.npy, a pickled dict read
    by the restricted unpickler): the 68 landmarks come from the embedding and start the alignment."""
    from likeness.model.correspondence import load_table
    from likeness.model.flame_bridge import build

    write_ict_flame(tmp_path / "assets" / "FLAME2020", ict, embedding=True)
    code, err = _install(capsys, tmp_path / "assets" / "FLAME2020" / "generic_model.pkl")
    assert code == 0 and "landmark_embedding.npy" in err and "l_eyelid.npy" in err
    model = flame.load()
    assert model.lmk_faces.shape == (68,) and model.lmk_bary.shape == (68, 3)
    bridge = build(model, ict, load_table())
    c, s = np.cos(TILT), np.sin(TILT)
    assert bridge.rotation == pytest.approx(np.array([[1, 0, 0], [0, c, s], [0, -s, c]]), abs=0.02)
    assert np.abs(bridge.translation + bridge.rotation @ SHIFT).max() < 0.003
    marks = model.landmark_points(model.template)
    assert np.linalg.norm(model.template[bridge.landmarks_68] - marks, axis=1).max() < 0.01


def test_landmark_embedding_that_runs_code_is_refused(tmp_path, data_dir, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    write_random_flame(tmp_path / "assets" / "FLAME2020")
    np.save(tmp_path / "assets" / "landmark_embedding.npy", {"full_lmk_faces_idx": Exploit()}, allow_pickle=True)
    code, err = _install(capsys, tmp_path / "assets" / "FLAME2020")
    assert code == 2 and "landmark_embedding.npy asks to run posix.system" in err
    assert not marker.exists() and not (data_dir / "models" / "flame").exists()


def test_track_reads_video_frames_with_smirk(ict_flame, ict_path, tmp_path, monkeypatch):
    """``likeness track --encoder smirk``: SMIRK's reading through the bridge is each frame's expression evidence."""
    pytest.importorskip("torch")
    from flame_synthetic import write_smirk_checkpoint
    from likeness.service.pipeline import Engine
    from likeness.capture.track import TrackRequest, run_track
    from shared_paths import SHARED

    clip = SHARED / "data" / "video_dev" / "bbaf2n.mpg"
    if not clip.is_file():
        pytest.skip("no dev video")
    _, _, _, root = ict_flame
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("LIKENESS_SMIRK", str(write_smirk_checkpoint(tmp_path / "SMIRK_em1.pt", neutral=True)))
    engine = Engine(use_blendshapes=False, use_encoder="smirk", device="cpu")
    seen = []
    original = Engine.observe

    def observe(self, model, cameras, found, scores, images):
        out = original(self, model, cameras, found, scores, images)
        seen.extend(o.sources for o in out)
        return out

    monkeypatch.setattr(Engine, "observe", observe)
    result = run_track(engine, TrackRequest(video=str(clip), output=str(tmp_path / "t"), model=str(ict_path),
                                            head=False, max_frames=4))
    assert result["frames"] == 4 and seen and all(s == ("smirk",) for s in seen)


@pytest.mark.parametrize("argv, encoder", [
    (["reconstruct", "a.jpg", "--encoder", "-o", "x"], "learned"),
    (["reconstruct", "--encoder", "a.jpg", "-o", "x"], "learned"),  # a bare --encoder before a photo, as before
    (["reconstruct", "--encoder", "smirk", "a.jpg", "-o", "x"], "smirk"),
    (["reconstruct", "a.jpg", "-o", "x"], None),
])
def test_encoder_option(argv, encoder):
    args = cli.build_parser().parse_args(cli._bare_encoder(argv))
    assert args.encoder == encoder and args.photos == ["a.jpg"]


@pytest.mark.parametrize("name, hint", [("flame", "flame.is.tue.mpg.de"), ("smirk", "SMIRK_em1.pt")])
def test_flame_and_smirk_are_never_downloaded(data_dir, capsys, name, hint):
    assert cli.main(["models", "install", name]) == 2
    err = capsys.readouterr().err
    assert "cannot download" in err and hint in err and not (data_dir / "models").exists()


def test_icts_arkit_shapes_are_carried_onto_flame(ict_flame, ict):
    """The FLAME head also gets ICT's 53 ARKit-named shapes (so Live Link Face and tracks can drive it): on the
    ICT-derived FLAME, the carried eyeBlink_L is FLAME's own left-lid offset (both are ICT's eyeBlink_L)."""
    model, bridge, arrays, _ = ict_flame
    carried = bridge.transfer(ict.expression_basis.astype(np.float64))
    assert carried.shape == (53, model.vertex_count, 3)
    blink = carried[bridge.names.index("eyeBlink_L")]
    lid = model.eyelids[0]
    moving = np.linalg.norm(lid, axis=1) > 1e-4
    assert np.linalg.norm(blink[moving] - lid[moving]) < 0.2 * np.linalg.norm(lid[moving])  # 12 % here
    head = head_model(model, bridge.landmarks_68, (bridge.names, carried))
    assert head.expression_names[-53:] == tuple(bridge.names)
    assert head.expression_names[:len(key_names(model))] == key_names(model)
