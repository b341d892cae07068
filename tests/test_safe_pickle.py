"""The restricted unpickler for user-supplied model files: arrays and containers load, code never runs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from likeness.errors import BadInput
from likeness.model.safe_pickle import load, loads
from scipy import sparse


def model_like() -> dict:
    """What a FLAME-style model holds once chumpy is gone: arrays, a sparse regressor, names, nested containers."""
    rng = np.random.default_rng(0)
    return {"v_template": rng.normal(size=(50, 3)), "f": np.arange(30, dtype=np.uint32).reshape(10, 3),
            "shapedirs": np.asfortranarray(rng.normal(size=(50, 3, 4)).astype(np.float32)),
            "J_regressor": sparse.random(5, 50, density=0.2, format="csc", random_state=1),
            "weights_csr": sparse.random(4, 6, density=0.5, format="csr", random_state=2),
            "kintree_table": np.array([[4294967295, 0], [0, 1]], dtype=np.int64),
            "bs_style": "lbs", "bs_type": b"lrotmin", "scale": np.float64(1.5), "count": 3,
            "parts": [("face", {1, 2}), frozenset({"x"})], "ratio": 2 + 1j}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_sparse_matrices_and_containers_load(protocol):
    original = model_like()
    loaded = loads(pickle.dumps(original, protocol=protocol))
    assert loaded.keys() == original.keys()
    for key, value in original.items():
        if sparse.issparse(value):
            assert type(loaded[key]) is type(value) and (loaded[key] != value).nnz == 0
        elif isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value)
        else:
            assert loaded[key] == value


class Exploit:
    """Runs a shell command when unpickled by an ordinary pickle.load."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("call, args", [
    (os.system, ("touch {marker}",)),
    (subprocess.call, (["touch", "{marker}"],)),
    (eval, ("open({marker!r}, 'w')",)),
    (exec, ("open({marker!r}, 'w')",)),
    (__import__, ("os",)),
])
def test_pickles_that_run_code_are_refused(tmp_path, call, args):
    marker = str(tmp_path / "pwned")
    args = tuple(a.format(marker=marker) if isinstance(a, str) else
                 [x.format(marker=marker) for x in a] if isinstance(a, list) else a for a in args)
    data = pickle.dumps({"v_template": np.zeros(3), "payload": Exploit(call, *args)})
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(data)
    with pytest.raises(BadInput, match=r"generic_model.pkl asks to run .* refused") as info:
        load(path)
    assert "official source" in info.value.hint
    assert not os.path.exists(marker)
    if call is os.system:  # the same bytes through pickle.load really run the command
        pickle.loads(data)
        assert os.path.exists(marker)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_chumpy_arrays_become_numpy_without_importing_chumpy(protocol):
    """FLAME's original pickles hold chumpy.ch.Ch objects: their stored array comes back, chumpy is never imported."""
    from flame_synthetic import _Ch, chumpy_dumps

    data = chumpy_dumps({"v_template": _Ch(np.arange(6.0).reshape(2, 3)), "f": np.zeros((1, 3), np.uint32)}, protocol)
    assert b"chumpy" in data
    loaded = loads(data, "generic_model.pkl")
    assert type(loaded["v_template"]) is np.ndarray and loaded["v_template"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert "chumpy" not in sys.modules


def test_chumpy_expressions_are_refused():
    """A chumpy object that is not a stored array (here one without data, as a derived expression would be) needs
    chumpy's code to evaluate: refused, with the conversion hint."""
    data = b"\x80\x02}q\x00X\n\x00\x00\x00v_templateq\x01cchumpy.ch\nCh\nq\x02)\x81q\x03}q\x04bs."
    with pytest.raises(BadInput, match=r"holds a chumpy expression \(chumpy.ch.Ch\)") as info:
        loads(data, "flame2020.pkl")
    assert "numpy.savez" in info.value.hint
    with pytest.raises(BadInput, match=r"chumpy expression \(chumpy.ch_ops.add\)"):
        loads(b"\x80\x02cchumpy.ch_ops\nadd\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00xq\x03K\x01sb.", "m.pkl")


@pytest.mark.parametrize("data", [b"", b"not a pickle at all", pickle.dumps(model_like())[:200]])
def test_damaged_pickles_are_bad_input(data):
    with pytest.raises(BadInput, match="is not a readable pickle"):
        loads(data, "model.pkl")


def test_python2_module_names_are_mapped():
    """Python 2 pickles name __builtin__ and copy_reg; they resolve to the allowed Python 3 names."""
    data = b"c__builtin__\nset\n(lp0\nI1\naI2\na\x85R."
    assert loads(data) == {1, 2}
