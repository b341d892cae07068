"""The whole job on real dev photos: real MediaPipe, real ICT model, bundle on disk."""

import json

import numpy as np
import pytest

from likeness.service.bundle import read_bundle
from likeness.model.correspondence import _ANCHORS
from likeness.errors import BadInput, NoFaceFound, OutputExists
from likeness.service.pipeline import ReconstructRequest
from conftest import dev_photo

# iBUG-68 landmarks with an unambiguous MediaPipe twin: eye corners, mouth corners, nose tip, chin
_CHECKED = {ibug: mp for mp, ibug in _ANCHORS.items() if ibug in (36, 39, 42, 45, 48, 54, 30, 8)}


def run(engine, ict_path, photos, out, **kw):
    request = ReconstructRequest(photos=[str(p) for p in photos], output=str(out), texture_size=256,
                                 model=str(ict_path), **kw)
    events = []
    result = engine.reconstruct(request, report=lambda *e: events.append(e))
    return result, events


@pytest.mark.parametrize("name", ["dev_000_london_002_03.jpg", "dev_064_skimage_astronaut.jpg",
                                  "dev_048_grid_id2_vcd_swwp2s_f00.jpg"])
def test_fitted_landmarks_sit_on_the_face(engine, ict_path, tmp_path, name):
    photo = dev_photo(name)
    result, events = run(engine, ict_path, [photo], tmp_path / "b")
    manifest, arrays = read_bundle(result["bundle"])
    entry = manifest["photos"][0]
    lm68 = np.array(entry["landmarks_68_px"])
    assert lm68.shape == (68, 2)
    from likeness.capture.images import load_photo

    mp = engine.detector().detect(load_photo(photo).rgb).points_px
    iod = np.linalg.norm(mp[33] - mp[263])
    err = [np.linalg.norm(lm68[ibug] - mp[m]) / iod for ibug, m in _CHECKED.items()]
    assert np.mean(err) < 0.06, err
    assert lm68[36, 0] < lm68[45, 0]  # iBUG 36 is the eye on the image's left
    assert [e[0] for e in events][0] == "load" and events[-1][1] == pytest.approx(1.0)
    fractions = [e[1] for e in events]
    assert fractions == sorted(fractions)


def test_manifest_carries_the_per_photo_interface(engine, ict_path, tmp_path):
    photos = [dev_photo("dev_000_london_002_03.jpg"), dev_photo("dev_001_london_002_08.jpg")]
    result, _ = run(engine, ict_path, photos, tmp_path / "pair", name="london 002")
    bundle = tmp_path / "pair"
    manifest, arrays = read_bundle(bundle)
    assert manifest["job"]["name"] == "london 002" and len(manifest["photos"]) == 2
    assert len(manifest["expressions"]) == 53 and arrays["expression_deltas"].shape == (53, 26719, 3)
    neutral, smile = manifest["photos"]
    for entry in manifest["photos"]:
        assert (bundle / entry["path"]).is_file()
        assert set(entry) >= {"path", "image_size", "camera", "pose", "expression", "identity",
                              "landmarks_68_px", "fit"}
        assert entry["identity"] == manifest["identity"]
        assert set(entry["pose"]) >= {"yaw_deg", "pitch_deg", "roll_deg", "model_to_camera"}
        assert abs(entry["pose"]["yaw_deg"]) < 15 and abs(entry["pose"]["roll_deg"]) < 15
        assert all(0.0 <= w <= 1.0 for w in entry["expression"].values())
        assert entry["camera"]["focal_px"] > 0 and len(entry["camera"]["principal_point_px"]) == 2
    smile_of = lambda e: e["expression"]["mouthSmile_L"] + e["expression"]["mouthSmile_R"]
    assert smile_of(smile) > smile_of(neutral) + 0.4
    for material in manifest["materials"]:
        for rel in material["textures"].values():
            assert (bundle / rel).is_file()
    assert (bundle / "preview.png").is_file() and (bundle / manifest["head_model"]["license_file"]).is_file()
    # the head sits in front of the camera, about an arm's length away
    distance = -np.array(neutral["pose"]["model_to_camera"])[2, 3]
    assert 0.2 < distance < 3.0
    assert json.loads((bundle / "manifest.json").read_text())["version"] == 1


def test_texture_shows_skin_where_the_face_is(engine, ict_path, tmp_path):
    result, _ = run(engine, ict_path, [dev_photo("dev_000_london_002_03.jpg")], tmp_path / "t")
    from PIL import Image

    tex = np.asarray(Image.open(tmp_path / "t" / "textures" / "skin_face_albedo.png")).astype(float)
    cheek = tex[int(0.45 * 256):int(0.55 * 256), int(0.25 * 256):int(0.35 * 256)].reshape(-1, 3).mean(0)
    assert cheek[0] > cheek[2] + 10 and cheek[0] > 100  # skin: red above blue, not dark


def test_bad_inputs_give_clear_errors_and_write_nothing(engine, ict_path, tmp_path):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    with pytest.raises(BadInput, match="not an image"):
        run(engine, ict_path, [not_image], tmp_path / "x")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(blank)
    with pytest.raises(NoFaceFound) as err:
        run(engine, ict_path, [blank], tmp_path / "x")
    assert err.value.hint
    with pytest.raises(BadInput):
        run(engine, ict_path, [tmp_path / "missing.jpg"], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x")]  # no temporary leftovers
    (tmp_path / "exists").mkdir()
    with pytest.raises(OutputExists):
        run(engine, ict_path, [dev_photo("dev_000_london_002_03.jpg")], tmp_path / "exists")


def test_several_faces_use_the_largest_and_warn(engine, ict_path, tmp_path):
    from PIL import Image

    big = Image.open(dev_photo("dev_000_london_002_03.jpg")).convert("RGB")
    small = Image.open(dev_photo("dev_002_london_009_03.jpg")).convert("RGB").resize((256, 256))
    canvas = Image.new("RGB", (big.width + 300, big.height), (128, 128, 128))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width + 20, 100))
    group = tmp_path / "group.jpg"
    canvas.save(group, quality=95)
    result, _ = run(engine, ict_path, [group], tmp_path / "g")
    manifest, _ = read_bundle(result["bundle"])
    entry = manifest["photos"][0]
    assert any("faces were found" in w for w in entry["warnings"]) and result["warnings"]
    assert entry["face_box_px"][2] < big.width  # the large face on the left was used
