"""``likeness models install flame|smirk --from PATH``: models only the user can supply (never downloaded).

- ``flame``: the user's FLAME ``generic_model.pkl`` (or a folder holding it and the optional files listed in
  :mod:`likeness.model.flame`), read through the restricted unpickler, checked, stored as plain arrays
  (``flame/flame_model.npz``) with a licence note. FLAME is non-commercial.
- ``smirk``: SMIRK's ``SMIRK_em1.pt`` (read with ``torch.load(weights_only=True)``, or a ``.safetensors``),
  checked key for key and shape for shape against SMIRK's encoder, stored as the encoder's tensors only
  (``smirk/smirk_encoder.safetensors``) with the original file's sha256 in ``smirk/source.json``.

Both are verified completely before anything is written, then written atomically: a refused file leaves the
installed copy (if any) untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadInput, ModelMissing
from ..paths import models_dir, write_atomically

Log = Callable[[str], None]
SMIRK_FILE = "smirk_encoder.safetensors"
SMIRK_SOURCE = "https://github.com/georgeretsi/smirk (commit c7de404c4389f073906a6db1adabf62efcea3f35)"
SMIRK_LICENSE = f"""SMIRK encoder weights (SMIRK_em1.pt), supplied by the user of Likeness.
Code: {SMIRK_SOURCE}, MIT licence. The weights come from the SMIRK authors' release and were trained with
FLAME, whose licence is non-commercial; check the terms of the release before any commercial use.
Likeness treats them as non-commercial and does not redistribute them.
"""
SMIRK_FOLDER, SMIRK_FILE = "smirk", "smirk_encoder.safetensors"  # under models_dir()
SMIRK_HINT = ("Download SMIRK_em1.pt through the link in SMIRK's README (" + SMIRK_SOURCE + ", "
              "pretrained_models/SMIRK_em1.pt), then `likeness models install smirk --from SMIRK_em1.pt`.")


def install(name: str, source: str | None, log: Log) -> Path:
    from ..model.flame import INSTALL_HINT, installed_path

    if source is None:
        raise ModelMissing(f"Likeness cannot download {name.upper()}: its licence needs you to fetch it yourself.",
                           INSTALL_HINT if name == "flame" else SMIRK_HINT)
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInput(f"{path} does not exist.", "Pass an existing file or folder with `--from PATH`.")
    target = installed_path() if name == "flame" else installed_smirk()
    files = _flame_files(path, log) if name == "flame" else _smirk_files(path, log)
    write_atomically(target.parent, files)
    log(f"Installed {name} to {target} (non-commercial: see {target.parent / 'LICENSE'})")
    return target


def _flame_files(path: Path, log: Log) -> dict[str, bytes]:
    from ..model import safe_pickle
    from ..model.flame import FLAME_FILE, INSTALL_HINT, LICENSE_NOTE, from_pickle_dict, read_side_files

    if path.is_dir():
        found = [path / "generic_model.pkl", *sorted(path.glob("*.pkl")), *sorted(path.glob("*/generic_model.pkl"))]
        pkl = next((p for p in found if p.is_file()), None)
        if pkl is None:
            raise BadInput(f"{path} holds no FLAME .pkl file.", INSTALL_HINT)
    else:
        pkl = path
    arrays = from_pickle_dict(safe_pickle.load(pkl), pkl.name)
    side, used = read_side_files([pkl.parent, pkl.parent.parent], len(arrays["template"]), len(arrays["faces"]))
    arrays.update(side)
    log(f"Read {pkl} ({len(arrays['template'])} vertices, {arrays['shapedirs'].shape[2]} shape and "
        f"{arrays['exprdirs'].shape[2]} expression modes, {len(arrays['parents'])} joints)"
        + (f" with {', '.join(used)}" if used else ""))
    for key, what in (("uv", "FLAME_texture.npz (UV layout): a cylindrical layout is used instead"),
                      ("eyelids", "l_eyelid.npy/r_eyelid.npy (SMIRK's eyelids): SMIRK's eyelid reading is dropped"),
                      ("lmk_faces", "landmark_embedding.npy: the landmarks come from the ICT correspondence")):
        if key not in arrays:
            log(f"  not found: {what}")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return {"LICENSE": LICENSE_NOTE.encode(), FLAME_FILE: buffer.getvalue()}


def _smirk_files(path: Path, log: Log) -> dict[str, bytes]:
    from ..learned.runtime import torch_available

    if not torch_available():
        raise ModelMissing("SMIRK needs torch, which is not installed.",
                           "pip install -e '.[smirk]' (or `python -m likeness.learned.setup_torch`).")
    from safetensors.torch import save

    from ..learned.smirk import encoder_state, read_checkpoint

    state = encoder_state(read_checkpoint(path), path.name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    log(f"Verified {path.name}: {len(state)} encoder tensors match SMIRK's encoder (sha256 {digest[:12]}…)")
    data = save({k: v.contiguous() for k, v in state.items()}, metadata={"source": path.name, "sha256": digest})
    source = json.dumps({"file": path.name, "sha256": digest, "tensors": len(state), "origin": SMIRK_SOURCE})
    return {"LICENSE": SMIRK_LICENSE.encode(), "source.json": source.encode(), SMIRK_FILE: data}


def installed_smirk() -> Path:
    """Where ``likeness models install smirk`` puts SMIRK's weights (converted to safetensors)."""
    return models_dir() / SMIRK_FOLDER / SMIRK_FILE


def find_smirk() -> Path:
    """The SMIRK checkpoint to use: ``$LIKENESS_SMIRK`` (a .pt or .safetensors), else the installed one."""
    env = os.environ.get("LIKENESS_SMIRK", "").strip()
    path = Path(env).expanduser() if env else installed_smirk()
    if not path.is_file():
        raise ModelMissing(f"SMIRK's weights are not installed (looked for {path}).", SMIRK_HINT)
    return path
