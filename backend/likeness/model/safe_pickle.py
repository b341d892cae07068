"""Load user-supplied pickle files (FLAME-style ``.pkl`` head models) without running code from them.

A pickle names the functions and classes it needs and the unpickler calls them: an ordinary ``pickle.load``
of a hostile file runs ``os.system`` or anything else it names. :func:`load` uses an unpickler that resolves only
the names in :data:`ALLOWED`: Python containers, NumPy arrays, dtypes and scalars, and SciPy's CSC/CSR/COO
sparse matrices (what a FLAME model holds besides chumpy objects). Anything else is refused with
:class:`~likeness.errors.BadInput` before it is imported, let alone called. Chumpy arrays (``chumpy.ch.Ch``, in
the original FLAME and SMPL files) never import chumpy: they load as inert stand-ins whose stored data (``x``)
becomes a plain NumPy array; a chumpy *expression* (anything but a stored array) is refused, since evaluating
it would need chumpy's code.

Python 2 pickles load as well (``encoding="latin1"``, the old module names mapped to the new ones).
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from pathlib import Path
from typing import Any

from ..errors import BadInput

_SPARSE = [(module, f"{kind}_matrix") for kind in ("csc", "csr", "coo")
           for module in (f"scipy.sparse._{kind}", f"scipy.sparse.{kind}")]
_NUMPY = [*((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
          *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core"))]  # protocol 5 arrays
#: ``(module, name)`` pairs a pickle may name; nothing else is ever imported or called.
ALLOWED: frozenset[tuple[str, str]] = frozenset([
    *_NUMPY, *_SPARSE,
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
    ("builtins", "bytearray"), ("builtins", "object"),
    ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"),  # protocol 0/1 objects: calls object.__new__ on an allowed class
    ("_codecs", "encode"),  # bytes in protocol 0-2 pickles
])
CONVERT_HINT = ("Convert the model to plain NumPy arrays first (e.g. load it once with chumpy in a separate "
                "environment you trust and save the arrays with numpy.savez).")


class _Chumpy:
    """An inert stand-in for a chumpy object while unpickling: it only keeps the state the pickle gives it."""

    qualname = "chumpy.ch.Ch"

    def __init__(self, *args: Any) -> None:  # noqa: ARG002 - NEWOBJ/REDUCE arguments are ignored
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


_CHUMPY: dict[str, type] = {}


def _chumpy_class(module: str, name: str) -> type:
    qualname = f"{module}.{name}"
    if qualname not in _CHUMPY:
        _CHUMPY[qualname] = type(f"_Chumpy_{name}", (_Chumpy,), {"qualname": qualname})
    return _CHUMPY[qualname]


def _plain(value: Any, source: str, depth: int = 0) -> Any:
    """``value`` with every chumpy stand-in replaced by its stored array (containers walked, not objects)."""
    if depth > 50:
        return value
    if isinstance(value, _Chumpy):
        state = value.state[0] if isinstance(value.state, tuple) and value.state else value.state
        data = state.get("x") if isinstance(state, dict) and value.qualname == "chumpy.ch.Ch" else None
        if data is None:
            raise BadInput(f"{source} holds a chumpy expression ({value.qualname}) rather than stored arrays; "
                           "evaluating it would need chumpy's code, which Likeness does not run.", CONVERT_HINT)
        import numpy as np

        return np.asarray(_plain(data, source, depth + 1))
    if isinstance(value, dict):
        return type(value)((k, _plain(v, source, depth + 1)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, source, depth + 1) for v in value)
    return value


class _Restricted(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only :data:`ALLOWED` names."""

    source = "the file"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names, as pickle itself maps them
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if module.split(".")[0] == "chumpy":
            return _chumpy_class(module, name)  # never imported: an inert stand-in, turned into arrays after
        if (module, name) not in ALLOWED:
            raise BadInput(f"{self.source} asks to run {module}.{name} while loading; model files never need that, "
                           "so it was refused (the file may be damaged or malicious).",
                           "Use the model file from its official source, or convert it to a .npz of plain arrays.")
        return super().find_class(module, name)


def loads(data: bytes, source: str = "the pickle") -> Any:
    """Unpickle ``data`` with the restricted unpickler; ``source`` names it in error messages."""
    unpickler = _Restricted(io.BytesIO(data), encoding="latin1")
    unpickler.source = source
    try:
        return _plain(unpickler.load(), source)
    except BadInput:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            ImportError, KeyError, MemoryError) as exc:
        raise BadInput(f"{source} is not a readable pickle ({type(exc).__name__}: {exc}).",
                       "Check that the file is complete and is the model file you meant.") from exc


def load(path: str | Path) -> Any:
    """Unpickle the file at ``path`` (see :func:`loads`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc}).", "Check the path.") from exc
    return loads(data, path.name)
