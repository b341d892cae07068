"""SMIRK's encoder: key-for-key compatibility with SMIRK's published encoder, strict loading, refusals, crop.

Real SMIRK weights are not available here: checkpoints are random, written in SMIRK_em1.pt's exact layout
(tests/flame_synthetic.py). The reference key list is ../shared/reference/smirk_encoder_state_dict.json.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flame_synthetic import write_smirk_checkpoint  # noqa: E402
from likeness.service import cli  # noqa: E402
from likeness.errors import BadInput  # noqa: E402
from likeness.learned.smirk import SmirkEncoder, crop, crop_matrix, load_encoder  # noqa: E402
from shared_paths import REPO, SHARED  # noqa: E402

REFERENCE = SHARED / "reference" / "smirk_encoder_state_dict.json"


def manifest_problems(state_dict, reference, prefix="", check_order=True) -> list[str]:
    """Differences between a state dict and the reference manifest (the checker of the reference's README)."""
    got = [(k[len(prefix):], list(v.shape), str(v.dtype).removeprefix("torch."))
           for k, v in state_dict.items() if k.startswith(prefix)]
    ref_map = {k: (s, d) for k, s, d in reference}
    got_map = {k: (s, d) for k, s, d in got}
    problems = [f"missing {k}" for k in ref_map if k not in got_map]
    problems += [f"unexpected {k}" for k in got_map if k not in ref_map]
    problems += [f"mismatch {k}: ref={ref_map[k]} got={got_map[k]}"
                 for k in ref_map if k in got_map and ref_map[k] != got_map[k]]
    if check_order and not problems and [k for k, *_ in got] != [k for k, *_ in reference]:
        problems.append("same keys, different order")
    return problems


@pytest.fixture(scope="module")
def reference() -> dict:
    if not REFERENCE.is_file():
        pytest.skip(f"no reference manifest at {REFERENCE}")
    return json.loads(REFERENCE.read_text())


def test_state_dict_matches_smirk_key_for_key_shape_for_shape_in_order(reference):
    encoder = SmirkEncoder(n_exp=50, n_shape=300)
    assert manifest_problems(encoder.state_dict(), reference["keys"]) == []
    assert len(encoder.state_dict()) == reference["num_keys"] == 762
    assert sum(p.numel() for p in encoder.parameters()) == reference["num_parameters"]
    out = encoder.eval()(torch.rand(2, 3, 224, 224))
    assert {k: list(v.shape) for k, v in out.items()} == reference["forward_output_shapes_batch2"]


def test_checkpoint_in_smirks_layout_loads_strictly(tmp_path, reference):
    path = write_smirk_checkpoint(tmp_path / "SMIRK_em1.pt")
    raw = torch.load(path, weights_only=True)
    assert manifest_problems(raw, reference["keys"], prefix="smirk_encoder.") == []
    encoder = load_encoder(path)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, raw["smirk_encoder." + key])
    with torch.no_grad():
        out = encoder(torch.rand(3, 3, 224, 224))
    assert out["eyelid_params"].min() >= 0 and out["eyelid_params"].max() <= 1
    assert out["jaw_params"][:, 0].min() >= 0 and out["jaw_params"][:, 1:].abs().max() <= 0.2


def _install(tmp_path, monkeypatch, capsys, source) -> tuple[int, str]:
    monkeypatch.setenv("LIKENESS_DATA_DIR", str(tmp_path / "data"))
    code = cli.main(["models", "install", "smirk", "--from", str(source)])
    return code, capsys.readouterr().err


def test_install_smirk_verifies_and_keeps_the_encoder_only(tmp_path, monkeypatch, capsys):
    code, err = _install(tmp_path, monkeypatch, capsys, write_smirk_checkpoint(tmp_path / "SMIRK_em1.pt"))
    assert code == 0 and "762 encoder tensors" in err
    folder = tmp_path / "data" / "models" / "smirk"
    assert sorted(p.name for p in folder.iterdir()) == ["LICENSE", "smirk_encoder.safetensors", "source.json"]
    assert "non-commercial" in (folder / "LICENSE").read_text()
    load_encoder(folder / "smirk_encoder.safetensors")  # the installed copy loads strictly too


@pytest.mark.parametrize("change, named", [
    ({"drop": "smirk_encoder.expression_encoder.expression_layers.0.bias"},
     "smirk_encoder.expression_encoder.expression_layers.0.bias"),
    ({"reshape": "smirk_encoder.shape_encoder.encoder.blocks.3.1.conv_dw.weight"},
     "smirk_encoder.shape_encoder.encoder.blocks.3.1.conv_dw.weight"),
])
def test_missing_or_misshapen_key_is_refused_naming_it(tmp_path, monkeypatch, capsys, change, named):
    code, err = _install(tmp_path, monkeypatch, capsys, write_smirk_checkpoint(tmp_path / "bad.pt", **change))
    assert code == 2 and named in err and "Traceback" not in err
    assert not (tmp_path / "data" / "models" / "smirk").exists()  # nothing half-written


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoint_that_runs_code_is_refused_without_running_it(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    path = tmp_path / "SMIRK_em1.pt"
    torch.save({"smirk_encoder.x": _Payload(marker)}, path, pickle_protocol=2)
    code, err = _install(tmp_path, monkeypatch, capsys, path)
    assert code == 2 and "not a readable tensor checkpoint" in err
    assert not marker.exists()
    bad = tmp_path / "plain.pt"
    bad.write_bytes(pickle.dumps([1, 2, 3]))
    assert _install(tmp_path, monkeypatch, capsys, bad)[0] == 2


def test_crop_is_smirks_square_around_the_landmarks():
    points = np.array([[100.0, 200.0], [300.0, 200.0], [200.0, 400.0]])  # box 200 × 200 centred at (200, 300)
    m = crop_matrix(points)
    side = int(200 * 1.4)
    corners = np.array([[200 - side / 2, 300 - side / 2, 1], [200 + side / 2, 300 + side / 2, 1]])
    assert corners @ m.T == pytest.approx(np.array([[0, 0], [223, 223]]))
    rgb = np.zeros((600, 500, 3), np.uint8)
    rgb[300, 200] = 255
    face, _ = crop(rgb, points)
    assert face.shape == (224, 224, 3) and face.dtype == np.float32 and 0 < face.max() <= 1.0
    y, x = np.unravel_index(face[..., 0].argmax(), face.shape[:2])
    assert abs(x - 111.5) <= 1.5 and abs(y - 111.5) <= 1.5


def test_unavailable_device_is_refused(tmp_path):
    from likeness.learned.smirk import SmirkRunner

    path = write_smirk_checkpoint(tmp_path / "SMIRK_em1.pt")
    assert SmirkRunner(path, "cpu").device == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="CUDA"):
            SmirkRunner(path, "cuda")


_TIMM_CHECK = textwrap.dedent("""
    import importlib.abc, importlib.machinery, sys, types
    # timm imports torchvision at start-up; the PyPI torchvision wheel does not load with the CPU torch, and the
    # backbones use none of it, so torchvision is an inert stand-in in this process only
    class Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            sub = Meta(name, (cls,), {})
            setattr(cls, name, sub)
            return sub
    class Dummy(metaclass=Meta):
        def __init__(self, *a, **k):
            pass
    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "torchvision":
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
        def create_module(self, spec):
            module = types.ModuleType(spec.name)
            module.__path__ = []
            module.__getattr__ = lambda n: getattr(Dummy, n) if not n.startswith("__") else None
            return module
        def exec_module(self, module):
            pass
    sys.meta_path.insert(0, Finder())
    import timm, torch
    from likeness.learned.mobilenet import MobileNetV3Features
    torch.manual_seed(0)
    for name in ("tf_mobilenetv3_small_minimal_100", "tf_mobilenetv3_large_minimal_100"):
        ref = timm.create_model(name, pretrained=False, features_only=True).eval()
        state = {k: (torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.3)
                 if v.dtype.is_floating_point else v for k, v in ref.state_dict().items()}
        ref.load_state_dict(state)
        ours = MobileNetV3Features(name).eval()
        ours.load_state_dict(state, strict=True)
        for size in (224, 200):
            x = torch.rand(2, 3, size, size)
            with torch.no_grad():
                diff = (ref(x)[-1] - ours(x)).abs().max().item()
            assert diff < 1e-5, (name, size, diff)
    print("same", timm.__version__)
""")


def test_backbones_compute_what_timms_compute():
    """Where timm is installed (scripts/test.sh: timm 0.9.16 --no-deps, the version SMIRK pins), timm's own
    backbones with the same random weights give the same feature maps."""
    try:
        import timm  # noqa: F401
    except ImportError as exc:
        if "torchvision" not in str(exc):
            pytest.skip("timm is not installed")
    done = subprocess.run([sys.executable, "-c", _TIMM_CHECK], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO / "backend")})
    if "No module named 'timm'" in done.stderr:
        pytest.skip("timm is not installed")
    assert done.returncode == 0 and "same" in done.stdout, done.stderr[-2000:]
