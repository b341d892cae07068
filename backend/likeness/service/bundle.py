"""Write and read the output bundle (format in docs/bundle.md).

The bundle is written into a hidden temporary sibling directory and renamed into place when complete, so a
bundle directory is either complete or absent. A write that fails (read-only folder, full disk) removes the
temporary directory and raises :class:`~likeness.errors.CannotWrite`.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .. import BUNDLE_VERSION, __version__
from ..errors import BadInput, CannotWrite, OutputExists
from ..model.headmodel import HeadModel
from ..appearance.png import encode_png

FORMAT = "likeness.bundle"
MANIFEST = "manifest.json"
MESH_FILE = "head.npz"
LICENSE_FILE = "licenses/HEAD_MODEL_LICENSE.txt"
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 92]


def check_output(path: str | Path) -> Path:
    """The bundle directory to create; refuses an existing one (nothing is ever overwritten)."""
    path = Path(path).expanduser().resolve()
    if path.exists():
        raise OutputExists(f"The output {path} already exists.",
                           "Choose a new output folder, or delete the old bundle first.")
    if not path.parent.is_dir():
        raise BadInput(f"The folder {path.parent} does not exist.", "Create it first or choose another output.")
    if not os.access(path.parent, os.W_OK):
        raise CannotWrite(f"The folder {path.parent} is not writable.", "Choose an output folder you can write to.")
    return path


def cannot_write(output: Path, exc: OSError) -> CannotWrite:
    """The user-facing error for an OSError while writing the bundle ``output``."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return CannotWrite(f"Could not write the bundle {output} ({exc.strerror or exc}); nothing was written.",
                       "Free some disk space, or choose another output folder." if full
                       else "Choose an output folder you can write to.")


def remove_stale_writes(output: Path) -> list[Path]:
    """Remove the hidden ``.<name>.tmp-<pid>`` folders of ``output`` left by writers that were killed.

    Only folders whose process no longer exists are removed (a live writer's folder is left alone). Returns them.
    """
    removed = []
    for stale in output.parent.glob(f".{output.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if stale.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:  # a killed process whose parent died too may linger unreaped as a zombie: it writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class BundleWriter:
    """Writes one bundle into a hidden temporary sibling folder, renamed into place by :meth:`finish`.

    Images start encoding in background threads as soon as they are added (OpenCV's encoders release the GIL),
    so encoding overlaps whatever the job does next. Use it as a context manager: leaving the ``with`` block
    without :meth:`finish` (an error, a cancel) removes everything written.
    """

    def __init__(self, output: str | Path) -> None:
        self.output = check_output(output)
        self.tmp = self.output.parent / f".{self.output.name}.tmp-{os.getpid()}"
        remove_stale_writes(self.output)
        try:
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            for sub in ("textures", "photos", "licenses"):
                (self.tmp / sub).mkdir(parents=True)
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise cannot_write(self.output, exc) from exc
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._pending: list[Future] = []
        self._mesh_added = False

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise cannot_write(self.output, exc) from exc

    def add_image(self, rel: str, rgb: np.ndarray | bytes | Callable[[], np.ndarray | bytes]) -> str:
        """Queue an RGB (H,W,3) or grey (H,W) uint8 image for encoding at ``rel`` (``.png``/``.jpg``); returns ``rel``.

        ``rgb`` may also be the encoded file's bytes, or a function that makes the image (or the bytes): it then
        runs in the encoder thread too (for images derived from others, such as maps, whose OpenCV work overlaps
        the job's).
        """
        options = _JPEG if rel.endswith(".jpg") else _PNG
        self._pending.append(self._pool.submit(_save_image, self.tmp / rel, rgb, options))
        return rel

    def add_mesh(self, model: HeadModel, vertices: np.ndarray) -> None:
        """Queue the mesh file (neutral ``vertices`` (V,3) in metres, head frame) as soon as they are known, so its
        writing overlaps the bake; :meth:`finish` then does not write it again."""
        self._pending.append(self._pool.submit(_write_mesh, self.tmp / MESH_FILE, model, vertices))
        self._mesh_added = True

    def finish(self, *, model: HeadModel, job_name: str, vertices: np.ndarray, identity: np.ndarray,
               photos: list[dict], texture_files: dict[int, dict[str, str]], warnings: list[str],
               base_colors: dict[int, tuple[float, float, float, float]] | None = None,
               extra: dict | None = None) -> Path:
        """Write the mesh, licence and manifest, wait for the images, and move the bundle into place.

        ``texture_files`` maps a material index to its maps by channel (``base_color``, ``normal``,
        ``roughness``); ``base_colors`` overrides a material's colour (e.g. the iris colour seen in the photos);
        ``extra`` adds top-level manifest fields (a text edit's ``edit`` record).
        """
        (self.tmp / LICENSE_FILE).write_text(model.license_text)
        if not self._mesh_added:
            self.add_mesh(model, vertices)
        for future in self._pending:
            future.result()
        colors = base_colors or {}
        materials = [{"name": mat.name, "kind": mat.kind,
                      "base_color": [round(float(c), 5) for c in colors.get(i, mat.base_color)],
                      "roughness": mat.roughness, "textures": dict(texture_files.get(i, {}))}
                     for i, mat in enumerate(model.materials)]
        manifest = {
            "format": FORMAT,
            "version": BUNDLE_VERSION,
            "generator": {"name": "likeness", "version": __version__},
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "job": {"name": job_name},
            "units": "meters",
            "head_model": {"name": model.name, "license": model.license_name, "license_file": LICENSE_FILE,
                           "non_commercial": model.non_commercial},
            "mesh": {"file": MESH_FILE, "vertex_count": model.vertex_count, "face_count": len(model.faces),
                     "uv_count": len(model.uv)},
            "expressions": list(model.expression_names),
            "identity": [round(float(v), 6) for v in identity],
            "materials": materials,
            "photos": photos,
            "warnings": warnings,
            **(extra or {}),
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.replace(self.tmp, self.output)
        return self.output


def _save_image(path: Path, rgb: np.ndarray | bytes | Callable[[], np.ndarray | bytes], options: list[int]) -> None:
    """Encode an RGB or grey image as PNG (:mod:`likeness.appearance.png`) or JPEG (OpenCV) by suffix; both release
    the GIL while encoding. ``bytes`` are an already encoded file, written as they are."""
    rgb = rgb() if callable(rgb) else rgb
    if isinstance(rgb, bytes):
        data = rgb
    elif path.suffix == ".png":
        data = encode_png(rgb)
    else:
        ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb,
                                   options)
        if not ok:
            raise OSError(f"could not encode {path.name}")
        data = encoded.tobytes()
    path.write_bytes(data)


def _write_mesh(path: Path, model: HeadModel, vertices: np.ndarray) -> None:
    """The mesh file: the head model's own arrays (zipped once per model, :func:`mesh_members`) plus the job's
    vertices, an ordinary ``.npz`` that ``np.load`` reads."""
    path.write_bytes(mesh_members(model))
    vertex_file = io.BytesIO()
    np.lib.format.write_array(vertex_file, np.ascontiguousarray(vertices, np.float32), allow_pickle=False)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("vertices.npy", vertex_file.getvalue())


@lru_cache(maxsize=4)
def mesh_members(model: HeadModel) -> bytes:
    """The mesh file's arrays that depend only on the head model (faces, UVs, materials, expression deltas,
    landmark indices) as a zip archive of ``.npy`` members, deflated at level 1: made once per model (about
    0.15 s for ICT), 4.9 MB instead of 18 MB to write per bundle."""
    arrays = {"faces": model.faces.astype(np.int32), "faces_uv": model.faces_uv.astype(np.int32),
              "uv": model.uv.astype(np.float32), "face_material": model.face_material.astype(np.int32),
              "expression_deltas": model.expression_basis.astype(np.float32),
              "landmarks_68": model.landmarks_68.astype(np.int32)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            archive.writestr(f"{name}.npy", member.getvalue())
    return buffer.getvalue()


def read_bundle(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Manifest and mesh arrays of a bundle (for scripts and tests; the add-on has its own checked reader)."""
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != BUNDLE_VERSION:
        raise BadInput(f"{path} is not a version {BUNDLE_VERSION} Likeness bundle.",
                       "Reconstruct it again with this version of Likeness.")
    with np.load(path / manifest["mesh"]["file"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return manifest, arrays
