"""The Stable Diffusion model behind text edits: user-supplied, checked, installed, loaded.

Nothing is downloaded here. ``likeness models install sd --from FOLDER`` copies a local diffusers folder (what
``StableDiffusionPipeline.save_pretrained`` writes, or a hub snapshot) into ``models_dir()/sd`` after checking
it: ``model_index.json`` names a Stable Diffusion pipeline, and ``unet``, ``vae``, ``text_encoder``,
``tokenizer`` and ``scheduler`` are there with their configs and **safetensors** weights (``.bin``/``.ckpt``
pickles are refused: loading them would run code). The licence travels along: the folder's ``LICENSE*`` file,
else the ``license:`` line of its ``README.md`` (model card), else "unknown", recorded in ``likeness_model.json``
with where it came from. No torch until :func:`load_pipeline`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import BadInput, ModelMissing
from ..paths import models_dir

FOLDER = "sd"
RECORD = "likeness_model.json"
PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
PIPELINES = ("StableDiffusionPipeline",)
#: licences known to forbid commercial use (matched in the recorded licence name, lower case)
NON_COMMERCIAL = ("non-commercial", "noncommercial", "research", "sai-nc", "stabilityai-nc")
INSTALL_HINT = ("Install one with `likeness models install sd --from FOLDER` (a local diffusers folder, "
                "e.g. a download of stabilityai/sd-turbo; README: Text edits).")


def installed_path() -> Path:
    return models_dir() / FOLDER


def find_model(path: str | os.PathLike | None = None) -> Path:
    """The diffusers folder to use: ``path``, else ``$LIKENESS_SD_MODEL``, else the installed one; checked."""
    chosen = path or os.environ.get("LIKENESS_SD_MODEL") or installed_path()
    folder = Path(chosen).expanduser()
    if not folder.exists():
        if path or os.environ.get("LIKENESS_SD_MODEL"):
            raise BadInput(f"The Stable Diffusion folder {folder} does not exist.", INSTALL_HINT)
        raise ModelMissing("No Stable Diffusion model is installed (text edits need one).", INSTALL_HINT)
    problems = folder_problems(folder)
    if problems:
        raise BadInput(f"{folder} is not a usable Stable Diffusion folder: {'; '.join(problems[:4])}.", INSTALL_HINT)
    return folder.resolve()


def folder_problems(folder: Path) -> list[str]:
    """What is wrong with ``folder`` as a diffusers Stable Diffusion folder (empty list: nothing)."""
    if not folder.is_dir():
        return [f"{folder.name} is not a folder"]
    index = folder / "model_index.json"
    try:
        meta = json.loads(index.read_text())
    except FileNotFoundError:
        return ["model_index.json is missing"]
    except (OSError, ValueError) as exc:
        return [f"model_index.json is not valid JSON ({exc})"]
    if not isinstance(meta, dict):
        return ["model_index.json is not a JSON object"]
    problems = []
    if meta.get("_class_name") not in PIPELINES:
        problems.append(f"model_index.json names {meta.get('_class_name')!r}, not one of {', '.join(PIPELINES)}")
    for part in PARTS:
        sub = folder / part
        if not sub.is_dir():
            problems.append(f"the {part} folder is missing")
            continue
        if part == "tokenizer":
            if not ((sub / "vocab.json").is_file() and (sub / "merges.txt").is_file()) \
                    and not (sub / "tokenizer.json").is_file():
                problems.append("the tokenizer has neither vocab.json + merges.txt nor tokenizer.json")
            continue
        config = "scheduler_config.json" if part == "scheduler" else "config.json"
        if not (sub / config).is_file():
            problems.append(f"{part}/{config} is missing")
        elif _bad_json(sub / config):
            problems.append(f"{part}/{config} is not valid JSON")
        if part != "scheduler" and not any(sub.glob("*.safetensors")):
            pickles = [p.name for p in sub.iterdir() if p.suffix in (".bin", ".ckpt", ".pt", ".pth")]
            problems.append(f"{part} has no .safetensors weights" + (
                f" (only {pickles[0]}, a pickle, which is refused)" if pickles else ""))
    return problems


def _bad_json(path: Path) -> bool:
    try:
        return not isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return True


def licence(folder: Path) -> dict:
    """``{"license", "license_file", "non_commercial", "source"}`` of a model folder (the record an install
    wrote, else read from the folder's own files)."""
    record = folder / RECORD
    if record.is_file():
        try:
            data = json.loads(record.read_text())
            if isinstance(data, dict) and "license" in data:
                return data
        except (OSError, ValueError):
            pass
    name, file = "unknown (see the model's own licence)", None
    for candidate in sorted(folder.glob("LICEN[SC]E*")):
        if candidate.is_file():
            file = candidate.name
            first = candidate.read_text(errors="replace").strip().splitlines()[:1]
            name = first[0].strip()[:120] if first else name
            break
    card = folder / "README.md"
    if card.is_file():
        match = re.search(r"^license(?:_name)?:\s*(.+)$", card.read_text(errors="replace")[:4000], re.MULTILINE)
        if match:
            name = match.group(1).strip().strip("'\"")
    lower = name.lower()
    return {"license": name, "license_file": file, "non_commercial": any(k in lower for k in NON_COMMERCIAL),
            "source": str(folder)}


def describe(folder: Path | None = None) -> dict:
    """The model entry for ``likeness models list`` and the add-on: name, installed, path, licence."""
    folder = folder or installed_path()
    installed = not folder_problems(folder) if folder.exists() else False
    info = licence(folder) if installed else {"license": "user-supplied", "non_commercial": False}
    return {"name": "sd", "installed": installed, "path": str(folder), "license": info["license"],
            "description": "Stable Diffusion (diffusers folder) for text edits: " + (
                info.get("source", "") if installed else "not installed, see `likeness models install sd`"),
            "non_commercial": bool(info.get("non_commercial"))}


def install(source: str | None, log=print) -> Path:
    """Copy the diffusers folder ``source`` into ``models_dir()/sd`` (checked first; replaced atomically)."""
    if not source:
        raise BadInput("Stable Diffusion weights are not downloaded by Likeness.",
                       "Download a diffusers folder yourself (README: Text edits) and pass it with --from FOLDER.")
    folder = Path(source).expanduser()
    problems = folder_problems(folder) if folder.exists() else [f"{folder} does not exist"]
    if problems:
        raise BadInput(f"{folder} is not a usable Stable Diffusion folder: {'; '.join(problems[:4])}.", INSTALL_HINT)
    info = licence(folder)
    target = installed_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{FOLDER}.tmp-{os.getpid()}"
    old = target.parent / f".{FOLDER}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        keep = [p for p in ("model_index.json", "README.md", *PARTS) if (folder / p).exists()]
        keep += [p.name for p in folder.glob("LICEN[SC]E*")]
        tmp.mkdir()
        for name in keep:
            src = folder / name
            if src.is_dir():  # weights as safetensors only: pickled copies are left behind
                shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("*.bin", "*.ckpt", "*.pt", "*.pth"))
            else:
                shutil.copy2(src, tmp / name)
        (tmp / RECORD).write_text(json.dumps(info, indent=1))
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    log(f"Installed Stable Diffusion ({info['license']}) to {target}")
    return target


def load_pipeline(folder: Path, device: str):
    """The diffusers ``StableDiffusionPipeline`` in ``folder`` on ``device`` (float16 on CUDA, else float32),
    without safety checker, from safetensors only, nothing fetched; a broken folder raises :class:`BadInput`."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for quiet in (diffusers_logging, transformers_logging):  # no progress bars or advice on the backend's log
        quiet.set_verbosity_error()
        quiet.disable_progress_bar()
    dtype = torch.float16 if device == "cuda" else torch.float32
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(folder), dtype=dtype, use_safetensors=True, local_files_only=True, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise BadInput(f"The Stable Diffusion folder {folder} could not be loaded ({type(exc).__name__}: "
                       f"{str(exc)[:300]}).", INSTALL_HINT) from exc
    pipe.set_progress_bar_config(disable=True)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.requires_grad_(False)
        part.eval()
    return pipe.to(device)
