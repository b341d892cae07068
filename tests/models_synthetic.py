"""Build a synthetic ICT-FaceKit checkout (OBJ files + vertex_indices.json) from a packed npz.

The checkout follows the upstream layout (``FaceXModel/generic_neutral_mesh.obj`` with ``usemtl`` groups,
``identityNNN.obj``, one OBJ per expression, ``vertex_indices.json``, a root ``LICENSE``). Shape OBJs hold
``neutral + delta`` written in float64 with repr (shortest round-trip digits), so converting them back gives
bit-identical float32 deltas, and ``-0.0`` deltas on a ``+0.0`` neutral coordinate are written as ``-0.0``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np

from likeness.model import ict_convert


def vertex_lines(vertices: np.ndarray) -> str:
    """``v x y z`` lines for (V,3) float64 vertices, with repr precision."""
    return ("v %r %r %r\n" * len(vertices)) % tuple(vertices.ravel().tolist())


class ShapeWriter:
    """Writes the ``v`` lines of ``neutral + delta``, formatting only the coordinates that differ from neutral."""

    def __init__(self, neutral: np.ndarray) -> None:
        self.neutral32 = neutral
        self.neutral = neutral.astype(np.float64).ravel()
        self.tokens = np.array(list(map(repr, self.neutral.tolist())), dtype=object)
        self.template = "v %s %s %s\n" * len(neutral)

    def lines(self, delta: np.ndarray) -> str:
        v = shape_vertices(self.neutral32, delta).ravel()
        changed = np.flatnonzero((v != self.neutral) | (np.signbit(v) != np.signbit(self.neutral)))
        tokens = self.tokens.copy()
        tokens[changed] = list(map(repr, v[changed].tolist()))
        return self.template % tuple(tokens.tolist())


_WRITER: ShapeWriter | None = None


def _start_worker(neutral: np.ndarray) -> None:
    global _WRITER
    _WRITER = ShapeWriter(neutral)


def _write_shape(job: tuple[Path, np.ndarray, str]) -> None:
    path, delta, tail = job
    path.write_text(_WRITER.lines(delta) + tail)


def neutral_obj(m: Mapping[str, np.ndarray]) -> str:
    """The neutral mesh: v, vt, and f v/vt lines grouped by ``usemtl``."""
    uv = m["uv"].astype(np.float64)
    parts = ["mtllib ICTFaceModelMaterial.mtl\n", vertex_lines(m["neutral"].astype(np.float64)),
             ("vt %r %r\n" * len(uv)) % tuple(uv.ravel().tolist())]
    corners = np.char.add(np.char.add((m["faces"] + 1).astype(str), "/"), (m["faces_uv"] + 1).astype(str))
    lines = np.char.add("f ", np.char.add(np.char.add(corners[:, 0], " "), corners[:, 1]))
    lines = np.char.add(np.char.add(lines, " "), corners[:, 2])
    quad = m["faces"][:, 3] >= 0
    lines[quad] = np.char.add(np.char.add(lines[quad], " "), corners[quad, 3])
    for name, (start, stop) in zip(m["material_names"], m["material_face_slice"]):
        parts.append(f"g {name}\nusemtl {name}\ns 1\n" + "\n".join(lines[start:stop].tolist()) + "\n")
    return "".join(parts)


def shape_vertices(neutral: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """float64 vertices ``v`` with ``float32(v - float64(neutral)) == delta`` bit for bit."""
    n64 = neutral.astype(np.float64)
    v = n64 + delta.astype(np.float64)
    return np.where((v == 0) & np.signbit(delta) & (n64 == 0), -0.0, v)


def write_checkout(m: Mapping[str, np.ndarray], root: Path, full_extras: bool = True) -> Path:
    """Write the checkout under ``root`` and return ``root``. ``full_extras`` makes the extra-expression
    OBJs complete meshes (v, vt, f) like upstream; the others hold only ``v`` lines, which is all the
    converter reads from them."""
    folder = root / ict_convert.MODEL_FOLDER
    folder.mkdir(parents=True)
    neutral_text = neutral_obj(m)
    (folder / ict_convert.NEUTRAL_OBJ).write_text(neutral_text)
    tail = neutral_text[neutral_text.index("\nvt ") + 1:]
    jobs = [(folder / f"{name}.obj", delta, tail if full else "")
            for names, basis, full in [(m["identity_names"], m["identity_basis"], False),
                                       (m["expression_names"], m["expression_basis"], False),
                                       (m["extra_expression_names"], m["extra_expression_basis"], full_extras)]
            for name, delta in zip(names, basis)]
    workers = min(4, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(m["neutral"],)) as pool:
        list(pool.map(_write_shape, jobs, chunksize=8))
    names = m["expression_names"].tolist()
    index = {"expressions": names, "fitting_expressions": names, "incompatibilities": [],
             "idx_to_fitting_verts": m["fitting_vertex_indices"].tolist(),
             "idx_to_rigid_verts": m["rigid_vertex_indices"].tolist(),
             "idx_to_lap_rigid_verts": m["lap_rigid_vertex_indices"].tolist(),
             "idx_to_landmark_verts": m["landmarks_multipie68"].tolist(),
             "idx_to_rigid_landmark_idx": m["landmarks_rigid_subset"].tolist()}
    (folder / ict_convert.INDEX_JSON).write_text(json.dumps(index, indent=4))
    (root / "LICENSE").write_text("Synthetic checkout for tests.\n\n" + ict_convert.LICENSE_TEXT)
    return root
