"""Likeness backend: reference photos of a person to a 3D head with expression blendshapes.

The core (head model, landmarks, fit, texture, bundle) imports neither bpy nor torch.
"""

__version__ = "0.1.0"

#: Version of the output bundle format (docs/bundle.md).
BUNDLE_VERSION = 1
#: Version of the JSON-lines protocol of ``likeness serve`` (docs/protocol.md).
PROTOCOL_VERSION = 1

from .service.malloc import keep_freed_memory as _keep_freed_memory  # noqa: E402

# before NumPy, OpenBLAS or any worker thread allocates: glibc reads its arena limit once (likeness.service.malloc)
_keep_freed_memory()
