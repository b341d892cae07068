import numpy as np
import pytest

from likeness.capture.blendshapes import BlendshapeScorer, find_task, model_name, to_weights
from likeness.capture.images import load_photo
from conftest import SHARED, dev_photo

TASK = SHARED / "models" / "mediapipe_face_landmarker" / "face_landmarker.task"


def test_arkit_names_map_to_the_model_names(ict):
    assert model_name("eyeBlinkLeft") == ("eyeBlink_L",)
    assert model_name("jawOpen") == ("jawOpen",)
    assert model_name("cheekPuff") == ("cheekPuff_L", "cheekPuff_R")
    weights = to_weights({"mouthSmileRight": 0.7, "browInnerUp": 0.4, "tongueOut": 0.9}, ict.expression_names)
    names = ict.expression_names
    assert weights[names.index("mouthSmile_R")] == 0.7
    assert weights[names.index("browInnerUp_L")] == weights[names.index("browInnerUp_R")] == 0.4
    assert np.isnan(weights).sum() == len(names) - 3


def test_the_task_is_found_through_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LIKENESS_MEDIAPIPE_TASK", raising=False)
    assert find_task() is None
    fake = tmp_path / "x.task"
    fake.write_bytes(b"")
    monkeypatch.setenv("LIKENESS_MEDIAPIPE_TASK", str(fake))
    assert find_task() == fake


@pytest.fixture(scope="module")
def scorer():
    if not TASK.is_file():
        pytest.skip("MediaPipe Face Landmarker bundle not in ../shared")
    return BlendshapeScorer(TASK)


def test_real_scores_see_a_smile(scorer):
    def smile(name):
        photo = load_photo(dev_photo(name))
        scores = scorer.scores(photo.rgb, (0, 0, photo.size[0], photo.size[1]))
        assert len(scores) == 51 and all(0 <= v <= 1 for v in scores.values())
        return scores["mouthSmileLeft"] + scores["mouthSmileRight"]

    assert smile("dev_001_london_002_08.jpg") > smile("dev_000_london_002_03.jpg") + 0.8


def test_the_fit_reports_its_evidence(ict_path, monkeypatch, scorer):
    from likeness.service.pipeline import Engine

    photo = load_photo(dev_photo("dev_001_london_002_08.jpg"))
    monkeypatch.setenv("LIKENESS_MEDIAPIPE_TASK", str(TASK))
    fused, _ = Engine().analyse([photo], str(ict_path))
    plain, _ = Engine(use_blendshapes=False, use_encoder=False).analyse([photo], str(ict_path))
    assert "mediapipe_blendshapes" in fused.photos[0].evidence
    assert plain.photos[0].evidence == ("landmarks", "iris_gaze")
    assert not np.allclose(fused.photos[0].expression, plain.photos[0].expression)
