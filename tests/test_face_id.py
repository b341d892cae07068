"""The likeness bench's judge (bench/quality/face_id.py): verification figures and dlib's descriptor."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "quality"))
import face_id  # noqa: E402


def test_verification_figures_on_hand_made_distances():
    # probes a, b; gallery a1 a2 b1 c1; the probe of a was made from a1 (excluded)
    d = np.array([[0.00, 0.30, 0.70, 0.50],
                  [0.65, 0.80, 0.40, 0.90]])
    probe = np.array(["a", "b"])
    gallery = np.array(["a", "a", "b", "c"])
    exclude = np.array([[True, False, False, False], [False] * 4])
    v = face_id.verification(d, probe, gallery, exclude)
    # same pairs: (a,a2)=0.30, (b,b1)=0.40; different: 0.70 0.50 0.65 0.80 0.90: every same < every different
    assert v.same_mean == pytest.approx(0.35)
    assert v.auc == pytest.approx(1.0)
    assert v.tar == pytest.approx(1.0)
    assert v.rank1 == pytest.approx(1.0)
    assert (v.probes, v.same_pairs) == (2, 2)
    # without the exclusion the probe of a finds its own source photo at 0: still right, one more same pair
    assert face_id.verification(d, probe, gallery).same_pairs == 3


def test_verification_counts_misses_and_ties():
    d = np.array([[0.70, 0.50],  # a: nearest is b (0.50): a rank-1 miss; its same pair is above the threshold
                  [0.50, 0.20]])  # b: its same pair at 0.20 is its nearest
    v = face_id.verification(d, np.array(["a", "b"]), np.array(["a", "b"]))
    assert v.rank1 == pytest.approx(0.5)
    assert v.tar == pytest.approx(0.5)
    # same: 0.70, 0.20; different: 0.50, 0.50 → pairs (same < diff): 0.20 beats both, 0.70 neither → 0.5
    assert v.auc == pytest.approx(0.5)
    tie = face_id.verification(np.array([[0.4, 0.4]]), np.array(["a"]), np.array(["a", "b"]))
    assert tie.auc == pytest.approx(0.5)  # a tie counts half


def test_a_probe_without_another_photo_of_its_person_only_adds_different_pairs():
    d = np.array([[0.3, 0.9], [0.8, 0.7]])
    v = face_id.verification(d, np.array(["a", "z"]), np.array(["a", "b"]))
    assert v.probes == 1 and v.same_pairs == 1
    assert v.auc == pytest.approx(1.0)  # 0.3 below 0.9, 0.8, 0.7


def test_dlib_tells_the_astronaut_from_a_cat():
    pytest.importorskip("dlib")
    if face_id.importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed")
    from skimage import data

    judge = face_id.FaceJudge()
    face = data.astronaut()
    a, found = judge.describe(face)
    mirrored, found_mirrored = judge.describe(face[:, ::-1])
    assert found and found_mirrored and a.shape == (128,)
    assert np.linalg.norm(a - mirrored) < face_id.THRESHOLD / 2  # the same person
    cat = data.chelsea()
    none, cat_found = judge.describe(cat)
    assert none is None and not cat_found  # no human face found and no fallback given
    forced, _ = judge.describe(cat, (100, 20, 300, 220))
    assert np.linalg.norm(a - forced) > face_id.THRESHOLD  # a cat's face is not the astronaut
