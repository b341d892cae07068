import numpy as np
import pytest

from likeness.errors import ModelMissing
from likeness.model.headmodel import load_ict, split_quads


def test_ict_loads_in_metres_with_every_face_assigned(ict):
    assert ict.vertex_count == 26719 and len(ict.faces) == 26384
    assert ict.identity_basis.shape == (100, 26719, 3)
    assert ict.expression_basis.shape == (53, 26719, 3) and len(ict.expression_names) == 53
    eye_l, eye_r = ict.neutral[ict.landmarks_68[[45, 36]]]
    assert 0.08 < np.linalg.norm(eye_l - eye_r) < 0.10  # outer eye corners ~8.9 cm apart
    assert eye_l[0] > 0 > eye_r[0]  # +X is the subject's left
    assert ict.face_material.min() >= 0 and ict.face_material.max() < len(ict.materials)
    assert {m.name for m in ict.materials} >= {"skin_face", "skin_head", "teeth", "sclera", "iris", "cornea"}
    assert [m.name for m in ict.materials if m.projected] == ["skin_face", "skin_head"]


def test_uvs_are_wrapped_into_unit_square(ict):
    assert ict.uv.min() >= 0.0 and ict.uv.max() <= 1.0
    face = ict.face_material == [m.name for m in ict.materials].index("skin_face")
    corners = ict.faces_uv[face]
    assert np.ptp(ict.uv[corners[corners >= 0]], axis=0).min() > 0.9  # the face tile spans the texture


def test_expression_weights_move_the_right_side(ict):
    blink_l = ict.expression_basis[ict.expression_names.index("eyeBlink_L")]
    moved = np.linalg.norm(blink_l, axis=1) > 1e-4
    assert ict.neutral[moved, 0].mean() > 0  # _L = subject's left = +X
    verts = ict.vertices(np.zeros(100), np.eye(53)[ict.expression_names.index("jawOpen")])
    chin = ict.landmarks_68[8]
    assert verts[chin, 1] < ict.neutral[chin, 1] - 0.005  # jaw drops by more than 5 mm


def test_split_quads_keeps_triangles_and_splits_quads():
    polys = np.array([[0, 1, 2, 3], [4, 5, 6, -1]])
    assert split_quads(polys).tolist() == [[0, 1, 2], [4, 5, 6], [0, 2, 3]]


def test_missing_model_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LIKENESS_ICT_MODEL", raising=False)
    with pytest.raises(ModelMissing) as err:
        load_ict()
    assert "likeness models install ict" in err.value.hint
    with pytest.raises(ModelMissing):
        load_ict(tmp_path / "nothing.npz")
