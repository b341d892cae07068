"""Write and read the output bundle (format in docs/bundle.md).

The bundle is written into a hidden temporary sibling directory and renamed into place when complete, so a
bundle directory is either complete or absent.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from . import BUNDLE_VERSION, __version__
from .errors import BadInput, OutputExists
from .headmodel import HeadModel

FORMAT = "likeness.bundle"
MANIFEST = "manifest.json"
MESH_FILE = "head.npz"
LICENSE_FILE = "licenses/HEAD_MODEL_LICENSE.txt"
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 92]


@dataclass
class BundlePhoto:
    """One photo's entry in the manifest, plus the upright pixels copied into the bundle."""

    record: dict  # manifest fields (path is filled in by write_bundle)
    rgb: np.ndarray  # (H,W,3) uint8


def check_output(path: str | Path) -> Path:
    """The bundle directory to create; refuses an existing one (nothing is ever overwritten)."""
    path = Path(path).expanduser().resolve()
    if path.exists():
        raise OutputExists(f"The output {path} already exists.",
                           "Choose a new output folder, or delete the old bundle first.")
    if not path.parent.is_dir():
        raise BadInput(f"The folder {path.parent} does not exist.", "Create it first or choose another output.")
    return path


def write_bundle(output: str | Path, *, model: HeadModel, job_name: str, vertices: np.ndarray,
                 identity: np.ndarray, photos: list[BundlePhoto], textures: dict[int, np.ndarray],
                 preview: np.ndarray | None, warnings: list[str]) -> Path:
    """Write a complete bundle at ``output`` (which must not exist) and return its path."""
    output = check_output(output)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / "textures").mkdir(parents=True)
        (tmp / "photos").mkdir()
        (tmp / "licenses").mkdir()
        images: dict[str, tuple[np.ndarray, list[int]]] = {}  # relative path -> RGB pixels, encoder options
        materials = []
        for index, mat in enumerate(model.materials):
            entry = {"name": mat.name, "kind": mat.kind, "base_color": list(mat.base_color),
                     "roughness": mat.roughness, "textures": {}}
            if index in textures:
                rel = f"textures/{mat.name}.png"
                images[rel] = (textures[index], _PNG)
                entry["textures"]["base_color"] = rel
            materials.append(entry)
        for k, photo in enumerate(photos):
            rel = f"photos/photo_{k:02d}.jpg"
            images[rel] = (photo.rgb, _JPEG)
            photo.record["path"] = rel
        if preview is not None:
            images["preview.png"] = (preview, _PNG)
        # image encoders release the GIL: encode in parallel with the mesh write
        with ThreadPoolExecutor(max_workers=2) as pool:
            saved = [pool.submit(_save_image, tmp / rel, px, opts) for rel, (px, opts) in images.items()]
            (tmp / LICENSE_FILE).write_text(model.license_text)
            _write_mesh(tmp / MESH_FILE, model, vertices)
            for future in saved:
                future.result()
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
            "photos": [p.record for p in photos],
            "warnings": warnings,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _save_image(path: Path, rgb: np.ndarray, options: list[int]) -> None:
    """Encode an RGB image as PNG or JPEG (by suffix) with OpenCV, which releases the GIL while encoding."""
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), options)
    if not ok:
        raise OSError(f"could not encode {path.name}")
    path.write_bytes(data.tobytes())


def _write_mesh(path: Path, model: HeadModel, vertices: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer,
             vertices=vertices.astype(np.float32),
             faces=model.faces.astype(np.int32),
             faces_uv=model.faces_uv.astype(np.int32),
             uv=model.uv.astype(np.float32),
             face_material=model.face_material.astype(np.int32),
             expression_deltas=model.expression_basis.astype(np.float32),
             landmarks_68=model.landmarks_68.astype(np.int32))
    path.write_bytes(buffer.getvalue())


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
