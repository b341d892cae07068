"""The model registry behind ``likeness models install NAME [--from PATH]`` and ``likeness models list``.

Models are installed into ``paths.models_dir()/<folder>/`` with their licence beside them:

- ``ict``: the ICT Face Model Light (MIT), converted from the upstream OBJ files into ``ict/ict_face_model.npz``.
  GitHub's archive bytes cannot be pinned, so the *converted content* is verified against digests.
- ``mediapipe-blendshapes``: Google's Face Landmarker bundle with the 52-blendshape model (Apache-2.0),
  ``mediapipe/face_landmarker.task``, verified by size and sha256.

Every install is verified before anything is written, then written atomically (temporary file in the
target folder + ``os.replace``). Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import stat
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from ..model import ict_convert
from ..model.flame import FLAME_FILE, FLAME_FOLDER
from .user_models import SMIRK_FILE, SMIRK_FOLDER
from ..errors import BadInput, ModelMissing
from ..paths import models_dir, write_atomically

MODEL_NAMES = ("ict", "mediapipe-blendshapes")  # downloadable; "sd" (text edits) is only ever installed --from a folder

ICT_ARCHIVE_URL = f"https://github.com/{ict_convert.SOURCE_REPO}/archive/{ict_convert.SOURCE_COMMIT}.zip"
# sha256 of the raw little-endian bytes of three arrays of the reference conversion of ICT-FaceKit at
# SOURCE_COMMIT (the npz described in the model README), computed once with
#   hashlib.sha256(np.ascontiguousarray(npz[key], dtype).tobytes()).hexdigest()
# for neutral (26719,3) "<f4", faces (26384,4) "<i4" and expression_basis (53,26719,3) "<f4".
ICT_DIGESTS = {
    "neutral": ("<f4", "92e87293b7e3c5bf2c013b94f15c0cf06f429cf046df6edfbfb719f77dd76781"),
    "faces": ("<i4", "a3423ae326f953730af879b3407c0348a05b82b8fc17f64028d58c0455f86dc1"),
    "expression_basis": ("<f4", "085d1b8997c8af2fab4fcf45edba64cd4eb66958963bb9e30c7f99e989114042"),
}
ICT_ARCHIVE_LIMIT = 2 << 30  # bytes: refuse larger downloads or extractions (the real archive is far smaller)

MEDIAPIPE_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
                 "float16/1/face_landmarker.task")
MEDIAPIPE_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MEDIAPIPE_SIZE = 3_758_596
MEDIAPIPE_NOTICE = f"""Face Landmarker model bundle (face_landmarker.task, float16, version 1)
Copyright The MediaPipe Authors.

Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.

Source: {MEDIAPIPE_URL}
"""

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelSpec:
    """One installable model: where it lives under ``models_dir()`` and what it is."""

    name: str
    folder: str
    filename: str
    license: str
    description: str
    non_commercial: bool = False

    def path(self) -> Path:
        return models_dir() / self.folder / self.filename


SPECS = {
    "ict": ModelSpec("ict", "ict", "ict_face_model.npz", "MIT (USC Institute for Creative Technologies)",
                     "ICT Face Model Light: head mesh, 100 identity modes, 53 ARKit-style expressions "
                     f"({ict_convert.SOURCE_REPO})"),
    "mediapipe-blendshapes": ModelSpec(
        "mediapipe-blendshapes", "mediapipe", "face_landmarker.task", "Apache-2.0 (Google MediaPipe)",
        "MediaPipe Face Landmarker with the 52-blendshape model (float16, v1)"),
    # user-supplied only (likeness.service.user_models): installed --from the user's own files, never downloaded
    "flame": ModelSpec("flame", FLAME_FOLDER, FLAME_FILE, "FLAME licence (MPI-IS): non-commercial, supplied by you",
                       "FLAME 2020/2023 head model (--model flame; docs/flame_smirk.md)", non_commercial=True),
    "smirk": ModelSpec("smirk", SMIRK_FOLDER, SMIRK_FILE,
                       "SMIRK code MIT; weights trained with FLAME: non-commercial, supplied by you",
                       "SMIRK encoder SMIRK_em1.pt (--encoder smirk; docs/flame_smirk.md)", non_commercial=True),
}


def list_models() -> list[dict]:
    """Every known model with its install state, as JSON-ready dicts."""
    from ..edit.sd import describe

    return [{"name": s.name, "installed": s.path().is_file(), "path": str(s.path()), "license": s.license,
             "description": s.description, "non_commercial": s.non_commercial} for s in SPECS.values()] + [describe()]


def install(name: str, source: str | None = None, log: Log = print) -> Path:
    """Install model ``name`` (download, or ``source``: a local file or folder) and return the installed file."""
    if name == "sd":  # a user-supplied diffusers folder for text edits (likeness.edit.sd), never downloaded
        from ..edit.sd import install as install_sd

        return install_sd(source, log)
    if name in ("flame", "smirk"):  # the user's own files (likeness.service.user_models), never downloaded
        from .user_models import install as install_user_model

        return install_user_model(name, source, log)
    if name not in SPECS:
        raise BadInput(f"Unknown model {name!r}.", f"Known models: {', '.join(MODEL_NAMES)}, sd, flame, smirk.")
    spec = SPECS[name]
    local = _existing(source) if source is not None else None
    payload, license_text = (_ict_payload if name == "ict" else _mediapipe_payload)(local, log)
    target = spec.path()
    write_atomically(target.parent, {"LICENSE": license_text.encode("utf-8"), target.name: payload})
    log(f"Installed {name} to {target}")
    return target


def fetch(url: str, dest: Path, log: Log, limit: int) -> None:
    """Download ``url`` to ``dest`` (at most ``limit`` bytes), logging progress; errors name ``--from PATH``."""
    hint = "Check your connection, or download the file yourself and pass it with `--from PATH`."
    request = urllib.request.Request(url, headers={"User-Agent": "likeness-model-installer"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            log(f"Downloading {url}" + (f" ({total / 1e6:.1f} MB)" if total else ""))
            done, reported, step = 0, 0, total // 10 if total else 20 << 20
            while chunk := response.read(1 << 20):
                done += len(chunk)
                if done > limit:
                    raise ModelMissing(f"The download from {url} is larger than expected ({limit} bytes).", hint)
                out.write(chunk)
                if done - reported >= step:
                    reported = done
                    log(f"  {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else ""))
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise ModelMissing(f"Could not download {url} ({reason}).", hint) from exc
    log(f"  downloaded {done / 1e6:.1f} MB")


def extract_safely(archive: Path, dest: Path, wanted: Callable[[PurePosixPath], bool]) -> None:
    """Extract the members of a zip for which ``wanted(path)`` is true into ``dest``.

    The whole archive is refused if any member is absolute, escapes ``dest`` ('zip slip'), or is a symlink,
    or if the wanted members exceed :data:`ICT_ARCHIVE_LIMIT` bytes."""
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                target = (root / info.filename).resolve()
                if (info.filename.startswith(("/", "\\")) or "\\" in info.filename or ":" in info.filename
                        or not target.is_relative_to(root)):
                    raise BadInput(f"{archive} has a member outside its folder: {info.filename!r}.",
                                   "Refusing a possibly malicious archive; use the official download.")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise BadInput(f"{archive} has a symbolic link: {info.filename!r}.",
                                   "Refusing a possibly malicious archive; use the official download.")
            chosen = [i for i in members if not i.is_dir() and wanted(PurePosixPath(i.filename))]
            if sum(i.file_size for i in chosen) > ICT_ARCHIVE_LIMIT:
                raise BadInput(f"{archive} unpacks to more than {ICT_ARCHIVE_LIMIT} bytes.")
            for info in chosen:
                zf.extract(info, root)
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # RuntimeError: encrypted or unsupported
        raise BadInput(f"Cannot unpack {archive} ({exc}).", "Download the archive again.") from exc


# ICT ------------------------------------------------------------------------------------------------------

def _ict_payload(source: Path | None, log: Log) -> tuple[bytes, str]:
    """(npz bytes, licence text) for the ICT model from the download, a zip, a checkout or a packed npz."""
    if source is not None and source.is_file() and source.suffix.lower() == ".npz":
        data = source.read_bytes()
        _verify_ict(_load_npz(data, source), str(source))
        log(f"Verified {source}")
        return data, _read_license(source.parent / "LICENSE", ict_convert.LICENSE_TEXT)
    with tempfile.TemporaryDirectory(prefix="likeness-ict-") as tmp:
        if source is None or source.is_file():
            archive = source or Path(tmp) / "ict-facekit.zip"
            if source is None:
                fetch(ICT_ARCHIVE_URL, archive, log, ICT_ARCHIVE_LIMIT)
            checkout = _unpack_checkout(archive, Path(tmp) / "checkout")
        else:
            checkout = source
        log(f"Converting the OBJ files in {checkout} ...")
        arrays = ict_convert.convert_checkout(checkout)
        _verify_ict(arrays, str(source or ICT_ARCHIVE_URL))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue(), _read_license(checkout / "LICENSE", ict_convert.LICENSE_TEXT)


def _unpack_checkout(archive: Path, dest: Path) -> Path:
    """Extract the model folder and LICENSE of a GitHub archive (one top folder, or none) -> checkout root."""
    try:
        with zipfile.ZipFile(archive) as zf:
            tops = {PurePosixPath(n).parts[0] for n in zf.namelist() if PurePosixPath(n).parts}
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInput(f"{archive} is not a zip archive ({exc}).", "Download the archive again.") from exc
    top = next(iter(tops)) if len(tops) == 1 else ""
    depth = 1 if top else 0

    def wanted(path: PurePosixPath) -> bool:
        rest = path.parts[depth:]
        return rest[:1] == (ict_convert.MODEL_FOLDER,) or rest == ("LICENSE",)

    dest.mkdir(parents=True)
    extract_safely(archive, dest, wanted)
    return dest / top


def _load_npz(data: bytes, origin: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BadInput(f"{origin} is not a readable npz archive ({exc}).",
                       "Pass the packed ict_face_model.npz, an ICT-FaceKit checkout folder or its zip.") from exc


def _verify_ict(arrays: dict[str, np.ndarray], origin: str) -> None:
    """Refuse content whose layout or pinned digests differ from the reference conversion."""
    problems = ict_convert.layout_problems(arrays)
    if problems:
        raise BadInput(f"{origin} does not have the ICT model layout: {'; '.join(problems[:5])}.",
                       "Pass the packed ict_face_model.npz, an ICT-FaceKit checkout folder or its zip.")
    for key, (dtype, expected) in ICT_DIGESTS.items():
        digest = hashlib.sha256(np.ascontiguousarray(arrays[key], dtype).tobytes()).hexdigest()
        if digest != expected:
            raise BadInput(f"{origin}: the '{key}' array differs from ICT-FaceKit {ict_convert.SOURCE_COMMIT[:7]} "
                           f"(sha256 {digest[:12]}…, expected {expected[:12]}…); refusing to install it.",
                           "Use an unmodified copy: `likeness models install ict` downloads the pinned version.")


# MediaPipe ------------------------------------------------------------------------------------------------

def _mediapipe_payload(source: Path | None, log: Log) -> tuple[bytes, str]:
    """(task bytes, licence text), verified by size and sha256."""
    if source is None:
        with tempfile.TemporaryDirectory(prefix="likeness-mediapipe-") as tmp:
            path = Path(tmp) / "face_landmarker.task"
            fetch(MEDIAPIPE_URL, path, log, MEDIAPIPE_SIZE)
            data, origin, license_text = path.read_bytes(), MEDIAPIPE_URL, MEDIAPIPE_NOTICE
    else:
        if not source.is_file() or source.stat().st_size != MEDIAPIPE_SIZE:
            raise BadInput(f"{source} is not the expected face_landmarker.task ({MEDIAPIPE_SIZE} bytes).",
                           f"Download it from {MEDIAPIPE_URL} and pass that file with `--from PATH`.")
        data, origin = source.read_bytes(), str(source)
        license_text = _read_license(source.parent / "LICENSE", MEDIAPIPE_NOTICE)
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != MEDIAPIPE_SIZE or digest != MEDIAPIPE_SHA256:
        raise BadInput(f"{origin} is not the expected face_landmarker.task (sha256 {digest}, "
                       f"expected {MEDIAPIPE_SHA256}); refusing to install it.",
                       f"Download it again from {MEDIAPIPE_URL} and pass it with `--from PATH`.")
    log(f"Verified {origin} (sha256 {digest[:12]}…)")
    return data, license_text


# Files ----------------------------------------------------------------------------------------------------

def _existing(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInput(f"{path} does not exist.", "Pass an existing file or folder with `--from PATH`.")
    return path


def _read_license(path: Path, default: str) -> str:
    """The licence text in ``path`` if that file exists (it travels with the model), else ``default``."""
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else default
