"""The job registry's yes/no parameters: JSON booleans only, so the string "false" never switches a stage on."""

from __future__ import annotations

import pytest

from likeness.errors import BadRequest
from likeness.service.jobs import JOBS, _encoder, _flag


def test_flags_take_booleans_and_keep_defaults():
    assert _flag({}, "refine", False) is False and _flag({}, "head", True) is True
    assert _flag({"refine": None}, "refine", True) is True
    assert _flag({"refine": True}, "refine", False) is True and _flag({"refine": 0}, "refine", True) is False


@pytest.mark.parametrize("value", ["false", "true", "", 2, 0.5, [True]])
def test_flags_refuse_what_is_not_a_boolean(value):
    with pytest.raises(BadRequest, match="refine"):
        _flag({"refine": value}, "refine", False)


def test_encoder_is_null_a_boolean_or_smirk():
    assert _encoder(None) is None and _encoder("smirk") == "smirk" and _encoder(False) is False
    assert _encoder("learned") is True and _encoder(1) is True
    with pytest.raises(BadRequest, match="encoder"):
        _encoder("off")


@pytest.mark.parametrize("op,params", [
    ("reconstruct", {"photos": ["a.jpg"], "output": "out", "occlusion": "false"}),
    ("track", {"video": "clip.mp4", "output": "out", "smooth": "no"}),
])
def test_jobs_refuse_a_string_flag_before_doing_anything(op, params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadRequest):
        JOBS[op](None, params, lambda *a: None, lambda: False)
    assert list(tmp_path.iterdir()) == []
