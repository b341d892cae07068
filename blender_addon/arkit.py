"""ARKit's 52 shape names and the Live Link Face CSV format, from the ONE table in the backend source.

The add-on cannot import the backend package (it runs in Blender's Python), but it ships the backend's source
(``backend_src/`` in the installed zip, the repository in a checkout). ``likeness/arkit.py`` there uses only the
standard library, so it is loaded from that file here: ``from .arkit import TABLE``; ``TABLE.ARKIT_52``,
``TABLE.spell``, ``TABLE.canonical``, ``TABLE.read_livelink_csv``, ... (see that module).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .setup_backend import backend_source_dir

_NAME = f"{__package__}._arkit_table"


def _load() -> ModuleType:
    path = backend_source_dir(Path(__file__).resolve().parent) / "backend" / "likeness" / "arkit.py"
    spec = importlib.util.spec_from_file_location(_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclass/typing machinery looks modules up by name
    spec.loader.exec_module(module)
    return module


TABLE = sys.modules.get(_NAME) or _load()
