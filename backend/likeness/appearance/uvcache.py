"""A disk cache of UV rasterisations (:func:`likeness.appearance.texture.uv_map`), shared by jobs and processes.

Rasterising a material's UV layout at 2048² takes seconds (most of a cold start) and depends only on the head
model's UV layout, the material and the texture size, so the result is kept on disk under
``$LIKENESS_CACHE_DIR`` (default ``<data_dir>/cache``, see :mod:`likeness.paths`), one uncompressed ``.npz``
per (layout, material, size), keyed by a hash of the arrays it was computed from. Files are written to a
temporary name and renamed, so a reader never sees half a file; a file that does not read back (truncated,
wrong arrays) is ignored and rewritten. The cache is an optimisation only: any error writing it is ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..paths import data_dir

#: Bump when the cached arrays or their meaning change.
VERSION = 1
FIELDS = ("texels", "local", "bary", "nearest", "far")
log = logging.getLogger(__name__)
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="likeness-uvcache")


def cache_dir() -> Path:
    override = os.environ.get("LIKENESS_CACHE_DIR")
    return Path(override) if override else data_dir() / "cache"


def key(arrays: tuple[np.ndarray, ...], material: int, size: int) -> str:
    """A hash of everything the rasterisation depends on."""
    digest = hashlib.sha256(f"uv-{VERSION}-{material}-{size}".encode())
    for array in arrays:
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()[:32]


def path_for(digest: str, material: int, size: int) -> Path:
    return cache_dir() / "uv" / f"uv_{size}_{material}_{digest}.npz"


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing or does not read back whole."""
    if os.environ.get("LIKENESS_UV_CACHE", "on") == "off" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in FIELDS}  # zip CRCs are checked on read
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        log.warning("ignoring the unreadable UV cache file %s (%s)", path, exc)
        return None
    n = len(arrays["texels"])
    if (arrays["local"].shape != (n,) or arrays["bary"].shape != (n, 3)
            or arrays["nearest"].shape != arrays["far"].shape):
        log.warning("ignoring the inconsistent UV cache file %s", path)
        return None
    return arrays


def save_later(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """:func:`save` in a background thread (the job need not wait for the disk; the process waits at exit)."""
    _WRITER.submit(save, path, arrays)


def flush() -> None:
    """Wait for the files :func:`save_later` queued."""
    _WRITER.submit(lambda: None).result()


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temporary file, then rename); errors are logged and ignored."""
    if os.environ.get("LIKENESS_UV_CACHE", "on") == "off":
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{name: arrays[name] for name in FIELDS})
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.warning("could not write the UV cache file %s (%s)", path, exc)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
