"""ARKit's 52 shape names and the Live Link Face CSV format, from the ONE table in the backend source.

The add-on cannot import the backend package (it runs in Blender's Python), but it ships the backend's source
(``backend_src/`` in the installed zip, the repository in a checkout). ``likeness/arkit.py`` there uses only the
standard library, so it is loaded from that file here (``setup_backend.backend_module``): ``from .arkit import
TABLE``; ``TABLE.ARKIT_52``, ``TABLE.spell``, ``TABLE.canonical``, ``TABLE.read_livelink_csv``, ... (see that
module).
"""

from __future__ import annotations

from .setup_backend import backend_module

TABLE = backend_module("arkit")
