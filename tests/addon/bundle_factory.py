"""Small synthetic bundles (format version 1) for unit tests of the reader and the importer.

A 20 cm box (8 vertices, 5 quads and 2 triangles) with 2 expressions, a textured skin material, an invisible
overlay material, and photos of 64x48 px seen by a camera 0.5 m in front of the face.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
from PIL import Image

EXPRESSIONS = ["jawOpen", "eyeBlink_L"]
PHOTO_SIZE = (64, 48)  # width, height in pixels
FOCAL_PX = 80.0
PRINCIPAL_POINT = (30.0, 26.0)


def box_arrays() -> dict[str, np.ndarray]:
    """Arrays of head.npz for the box, in metres, head frame (+Y up, +Z toward the camera)."""
    s = 0.1
    vertices = np.array([[x, y, z] for x in (-s, s) for y in (-s, s) for z in (-s, s)], dtype=np.float32)
    # vertex index = 4*ix + 2*iy + iz; counter-clockwise seen from outside
    faces = np.array([[1, 5, 7, 3],   # front  +Z
                      [0, 2, 6, 4],   # back   -Z
                      [4, 6, 7, 5],   # right  +X
                      [0, 1, 3, 2],   # left   -X
                      [2, 3, 7, 6],   # top    +Y
                      [0, 4, 5, -1],  # bottom -Y (two triangles)
                      [0, 5, 1, -1]], dtype=np.int32)
    corners = faces != -1
    faces_uv = np.full(faces.shape, -1, dtype=np.int32)
    faces_uv[corners] = np.arange(corners.sum(), dtype=np.int32)
    rng = np.random.default_rng(7)
    uv = rng.uniform(0.0, 1.0, size=(int(corners.sum()), 2)).astype(np.float32)
    deltas = np.zeros((len(EXPRESSIONS), len(vertices), 3), dtype=np.float32)
    deltas[0, vertices[:, 1] < 0, 1] = -0.02   # jawOpen: the bottom moves down 2 cm
    deltas[1, vertices[:, 0] > 0, 2] = 0.01    # eyeBlink_L: the subject's left side moves forward 1 cm
    return {
        "vertices": vertices, "faces": faces, "faces_uv": faces_uv, "uv": uv,
        "face_material": np.array([0, 0, 0, 0, 0, 1, 1], dtype=np.int32),
        "expression_deltas": deltas,
        "landmarks_68": (np.arange(68) % len(vertices)).astype(np.int32),
    }


def photo_record(k: int, weights: list[float]) -> dict[str, Any]:
    pose = np.eye(4)
    pose[2, 3] = -0.5  # the head 0.5 m in front of the camera, facing it
    return {
        "path": f"photos/photo_{k:02d}.jpg",
        "source_path": f"/somewhere/photo_{k}.jpg",
        "image_size": list(PHOTO_SIZE),
        "camera": {"focal_px": FOCAL_PX, "principal_point_px": list(PRINCIPAL_POINT), "focal_source": "default"},
        "pose": {"yaw_deg": 0.0, "pitch_deg": 0.0, "roll_deg": 0.0, "model_to_camera": pose.tolist()},
        "expression": dict(zip(EXPRESSIONS, weights, strict=True)),
        "identity": [0.5, -0.25],
        "warnings": [],
    }


def write_bundle(root: Path, photos: int = 1,
                 edit_manifest: Callable[[dict], None] | None = None,
                 edit_arrays: Callable[[dict], None] | None = None) -> Path:
    """Write a valid box bundle at ``root``; ``edit_*`` may break it before it is written."""
    (root / "textures").mkdir(parents=True)
    (root / "photos").mkdir()
    Image.new("RGB", (8, 8), (200, 120, 90)).save(root / "textures" / "skin_face.png")
    for k in range(photos):
        Image.new("RGB", PHOTO_SIZE, (40 + 60 * k, 80, 120)).save(root / "photos" / f"photo_{k:02d}.jpg")
    arrays = box_arrays()
    manifest = {
        "format": "likeness.bundle", "version": 1,
        "generator": {"name": "likeness", "version": "0.1.0"},
        "job": {"name": "boxhead"}, "units": "meters",
        "mesh": {"file": "head.npz", "vertex_count": 8, "face_count": 7, "uv_count": len(arrays["uv"])},
        "expressions": list(EXPRESSIONS),
        "identity": [0.5, -0.25],
        "materials": [
            {"name": "skin_face", "kind": "skin", "base_color": [0.8, 0.6, 0.5, 1.0],
             "textures": {"base_color": "textures/skin_face.png"}, "roughness": 0.5},
            {"name": "eye_overlay", "kind": "overlay", "base_color": [1.0, 1.0, 1.0, 0.0], "textures": {},
             "roughness": 0.0},
        ],
        "photos": [photo_record(k, [0.25 + 0.25 * k, 0.75 - 0.25 * k]) for k in range(photos)],
        "warnings": [],
    }
    if edit_manifest is not None:
        edit_manifest(manifest)
    if edit_arrays is not None:
        edit_arrays(arrays)
    np.savez(root / "head.npz", **arrays)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
