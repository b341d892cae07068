"""The ``edit`` and ``create`` jobs: a bundle (or the mean head) + a prompt → a new bundle, written atomically.

No torch at import. The edit runs in three steps: read and check everything (request, source bundle, model folder),
optimise (:mod:`.optimise`, torch), then write the new bundle through :class:`likeness.service.bundle.BundleWriter`
(a hidden temporary folder renamed into place at the end: a failure or a Cancel leaves nothing). The new bundle's
manifest carries an ``edit`` record (prompt, negative prompt, what changed, strength, steps, seed, model and its
licence, the source bundle) and its albedo maps carry the watermark of :mod:`.watermark`.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..appearance import light as sh
from ..service.bundle import BundleWriter, check_output
from ..service.pipeline import check_device
from ..model.camera import Camera
from ..errors import BadInput, Cancelled
from ..model.headmodel import HeadModel
from . import areas, lights, sd, watermark
from .cameras import head_centre, orbit_camera
from .parts import PARTS, EditInputs, EditResult, EditSettings

Report = Callable[[str, float, str], None]
MAX_STEPS = 5000
#: the light of a head without a photo light: soft, from the front, a little above and to the subject's left
DEFAULT_LIGHT = sh.directional((0.3, 0.4, 1.0), 0.8, 0.3)
_PIPELINES: dict = {}  # (folder, device) → loaded pipeline: the warm backend keeps the last one


@dataclass(frozen=True)
class EditRequest:
    """``bundle`` None = text → new head from the mean head (the ``create`` job)."""

    prompt: str
    output: str
    bundle: str | None = None
    negative_prompt: str = ""
    what: tuple[str, ...] = ("albedo",)
    strength: float = 0.5
    steps: int = 200
    seed: int = 0
    device: str = "auto"
    region: str | None = None
    size: int = 512
    guidance_scale: float = 7.5
    sd_model: str | None = None
    model: str | None = None  # head-model npz (shape edits and new heads need its identity modes)
    texture_size: int = 1024  # new heads only
    name: str | None = None


def parse_what(value) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    what = tuple(dict.fromkeys(str(w).strip().lower() for w in items if str(w).strip()))
    bad = [w for w in what if w not in PARTS]
    if not what or bad:
        named = "unknown parts: " + ", ".join(bad) if bad else "nothing"
        raise BadInput(f"--what {','.join(what) or '(nothing)'} names {named}.",
                       f"Use a comma-separated list of {', '.join(PARTS)}.")
    return what


def validate(request: EditRequest) -> None:
    if not isinstance(request.prompt, str) or not request.prompt.strip():
        raise BadInput("The prompt is empty.", "Describe the change, e.g. --prompt \"older, with a grey beard\".")
    parse_what(request.what)
    if not 0.0 < float(request.strength) <= 1.0:
        raise BadInput(f"Strength {request.strength} is out of range.", "Use a strength above 0 and at most 1.")
    if not 0 <= int(request.steps) <= MAX_STEPS:
        raise BadInput(f"{request.steps} steps is out of range.", f"Use 0 to {MAX_STEPS} steps.")
    if not 16 <= int(request.size) <= 1024 or int(request.size) % 8:
        raise BadInput(f"Render size {request.size} is not usable.",
                       "Use a multiple of 8 from 16 to 1024 (512 for SD 1.5 and SD-Turbo).")
    if not 64 <= int(request.texture_size) <= 8192:
        raise BadInput(f"Texture size {request.texture_size} is out of range.", "Use a size from 64 to 8192.")
    check_device(request.device)
    if request.region is not None and request.region not in areas.REGIONS:
        raise BadInput(f"Unknown region {request.region!r}.", f"Use one of: {', '.join(areas.REGIONS)}.")


def _source(path: str) -> tuple[HeadModel, dict, dict[int, np.ndarray], Path]:
    from ..appearance.relight import bundle_head

    root = Path(path).expanduser().resolve()
    if not (root / "manifest.json").is_file():
        raise BadInput(f"{root} is not a Likeness bundle (no manifest.json).",
                       "Pass a folder made by likeness reconstruct.")
    try:
        model, manifest, textures = bundle_head(root)
        licence = (root / manifest["head_model"]["license_file"]).read_text()
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise BadInput(f"The bundle {root} cannot be read ({type(exc).__name__}: {exc}).",
                       "Reconstruct it again with this version of Likeness.") from exc
    if not textures:
        raise BadInput(f"The bundle {root} has no albedo textures to edit.", "Reconstruct it again.")
    return replace(model, license_text=licence), manifest, textures, root


def pipeline(folder: Path, device: str):
    key = (str(folder), device)
    if key not in _PIPELINES:
        _PIPELINES.clear()
        _PIPELINES[key] = sd.load_pipeline(folder, device)
    return _PIPELINES[key]


def run(engine, request: EditRequest, report: Report = lambda *a: None,
        cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Edit a bundle (or make a new head); returns ``{"bundle", "warnings", "edit"}``."""
    validate(request)
    what = parse_what(request.what)
    output = check_output(request.output)
    folder = sd.find_model(request.sd_model) if int(request.steps) > 0 else None  # fail before the slow parts
    report("load", 0.0, "Reading the head")
    warnings: list[str] = []
    if request.bundle is not None:
        inputs, regions_model, manifest, root = _from_bundle(engine, request, what)
    else:
        inputs, manifest, root = _new_head(engine, request), None, None
        regions_model = inputs.model
        if "expression" in what:
            warnings.append("A new head has no photo to hold expression weights: the expression edit is not kept.")
    preset = "light" in what and lights.understood(request.prompt)
    if preset:
        inputs.light = lights.light_from_text(request.prompt)
    if request.region:
        inputs.vertex_mask = areas.vertex_mask(regions_model, request.region)
        inputs.texel_masks = areas.texel_masks(regions_model, inputs.vertex_mask,
                                               {m: t.shape[0] for m, t in inputs.maps.items()})
    settings = EditSettings(what=what, steps=int(request.steps), strength=float(request.strength),
                            seed=int(request.seed), size=int(request.size),
                            map_size=min(512, max(t.shape[0] for t in inputs.maps.values())))
    record = {"kind": "edit" if root else "create", "prompt": request.prompt.strip(),
              "negative_prompt": request.negative_prompt, "what": list(what), "strength": settings.strength,
              "steps": settings.steps, "seed": settings.seed, "guidance_scale": float(request.guidance_scale),
              "render_size": settings.size, "region": request.region, "light_from_words": preset,
              "model": None, "source_bundle": None}
    if root is not None:
        record["source_bundle"] = {"path": str(root), "job": manifest["job"]["name"],
                                   "created_utc": manifest.get("created_utc")}
    if folder is not None:
        info = sd.licence(folder)
        record["model"] = {"path": str(folder), "license": info["license"],
                           "non_commercial": bool(info.get("non_commercial"))}
        if info.get("non_commercial"):
            warnings.append(f"Made with a model under a non-commercial licence ({info['license']}).")
        result = _optimise(inputs, settings, request, folder, report, cancelled)
    elif preset:
        result = EditResult(maps=inputs.maps, vertices=inputs.vertices, identity=inputs.identity,
                            expression=inputs.expression, light=inputs.light)
    else:
        raise BadInput("With 0 steps only the light can change, from words such as 'warm sunset from the left'.",
                       "Use --what light with a light description, or more steps (needs a Stable Diffusion model).")
    if cancelled():
        raise Cancelled()
    report("write", 0.9, "Writing the new bundle")
    name = request.name or (f"{manifest['job']['name']}_edit" if manifest else _slug(request.prompt))
    path = _write(output, inputs.model, manifest, root, result, record, name, warnings, inputs)
    report("write", 1.0, "Done")
    return {"bundle": str(path), "warnings": warnings, "edit": record}


def _from_bundle(engine, request: EditRequest, what: tuple[str, ...]) -> tuple[EditInputs, HeadModel, dict, Path]:
    """The edit's starting point from a bundle: its head, first photo's expression, light and camera. Shape edits
    take the identity modes from the head model (``request.model``), which must share the bundle's topology."""
    model, manifest, maps, root = _source(request.bundle)
    photo = manifest["photos"][0] if manifest["photos"] else None
    identity = np.asarray(manifest["identity"], np.float64)
    names = model.expression_names
    expression = np.array([photo["expression"].get(n, 0.0) for n in names]) if photo else np.zeros(len(names))
    light = np.asarray(photo["light"]["sh"], np.float64) if photo and "light" in photo else DEFAULT_LIGHT
    basis, regions_model = None, model
    if "shape" in what:
        ict, _ = engine.model(request.model)
        if ict.vertex_count != model.vertex_count:
            raise BadInput("The head model's topology differs from the bundle's.",
                           "Use the head model the bundle was made with (--model).")
        basis, regions_model = ict.identity_basis[:len(identity)], ict
    photo_view = None
    if photo is not None:
        cam = photo["camera"]
        photo_view = (Camera(cam["focal_px"], tuple(cam["principal_point_px"]), tuple(photo["image_size"])),
                      np.asarray(photo["pose"]["model_to_camera"], np.float64))
    inputs = EditInputs(model=model, vertices=model.neutral.astype(np.float64), identity=identity,
                        identity_basis=basis, expression=expression, light=light, maps=maps, photo_view=photo_view)
    return inputs, regions_model, manifest, root


def _new_head(engine, request: EditRequest) -> EditInputs:
    """Text → head starts from the head model's mean head with plain skin maps, a soft front light and a prior
    pulling the identity towards the mean (N(0,1) coefficients)."""
    ict, _ = engine.model(request.model)
    identity = np.zeros(min(60, len(ict.identity_basis)))
    skin = sh.linear_to_srgb8(np.array([m.base_color[:3] for m in ict.materials])).astype(np.uint8)
    size = int(request.texture_size)
    maps = {i: np.tile(skin[i], (size, size, 1)) for i, m in enumerate(ict.materials) if m.projected}
    return EditInputs(model=ict, vertices=ict.vertices(), identity=identity,
                      identity_basis=ict.identity_basis[:len(identity)], expression=np.zeros(len(ict.expression_names)),
                      light=DEFAULT_LIGHT, maps=maps, identity_prior=0.05)


def _optimise(inputs, settings, request, folder, report, cancelled) -> EditResult:
    from .guidance import Guidance
    from .optimise import run_edit
    from .render import pick_device

    device = pick_device(request.device)
    report("load", 0.05, "Loading Stable Diffusion")
    pipe = pipeline(folder, device)
    if cancelled():
        raise Cancelled()
    report("load", 0.1, "Reading the prompt")
    guidance = Guidance(pipe, request.prompt.strip(), request.negative_prompt, request.guidance_scale, device)

    def step(done: int, total: int, loss: float) -> None:
        report("edit", 0.1 + 0.8 * done / total, f"Step {done}/{total} (loss {loss:.3g})")

    return run_edit(inputs, settings, guidance, device, step, cancelled)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text.strip())[:40].strip("_") or "head"


def _write(output: Path, model: HeadModel, manifest: dict | None, root: Path | None, result: EditResult,
           record: dict, name: str, warnings: list[str], inputs: EditInputs) -> Path:
    from ..appearance.maps import normal_map, roughness_map

    payload = watermark.payload_for(record)
    record["watermark"] = {"method": "likeness-dct-qim-1", "payload": f"{payload:016x}",
                           "read_with": "likeness watermark BUNDLE"}
    with BundleWriter(output) as writer:
        files: dict[int, dict[str, str]] = {}
        for m, rgb in result.maps.items():
            mname = model.materials[m].name
            marked = watermark.embed(rgb, payload)
            files[m] = {"base_color": writer.add_image(f"textures/{mname}_albedo.png", marked)}
            source = manifest["materials"][m]["textures"] if manifest else {}
            if source.get("roughness"):
                files[m]["roughness"] = source["roughness"]
                (writer.tmp / source["roughness"]).write_bytes((root / source["roughness"]).read_bytes())
            elif manifest is None:
                files[m]["roughness"] = writer.add_image(f"textures/{mname}_roughness.png",
                                                         roughness_map(model, m, rgb.shape[0]))
            if source.get("normal") or (manifest is None and mname == "skin_face"):
                files[m]["normal"] = writer.add_image(f"textures/{mname}_normal.png",
                                                      lambda rgb=marked: normal_map(rgb))
        photos = []
        for k, photo in enumerate(manifest["photos"] if manifest else []):
            rec = copy.deepcopy(photo)
            (writer.tmp / rec["path"]).write_bytes((root / photo["path"]).read_bytes())
            rec["expression"] = {n: round(float(w), 5) for n, w in zip(model.expression_names, result.expression)} \
                if "expression" in record["what"] else rec["expression"]
            rec["identity"] = [round(float(v), 6) for v in result.identity]
            matrix = np.asarray(rec["pose"]["model_to_camera"], np.float64)
            weights = np.array([rec["expression"].get(n, 0.0) for n in model.expression_names])
            posed = result.vertices + np.tensordot(weights, model.expression_basis, axes=1)
            cam = Camera(rec["camera"]["focal_px"], tuple(rec["camera"]["principal_point_px"]),
                         tuple(rec["image_size"]))
            lm, _ = cam.project(posed[model.landmarks_68] @ matrix[:3, :3].T + matrix[:3, 3])
            rec["landmarks_68_px"] = np.round(lm, 3).tolist()
            if "light" in record["what"]:
                rec["light"] = {"sh": np.round(result.light, 5).tolist(), "frame": "head",
                                "skin_albedo": rec.get("light", {}).get("skin_albedo", [0.5, 0.4, 0.35]),
                                "occlusion": bool(rec.get("light", {}).get("occlusion", False)),
                                "from_edit": record["prompt"]}
            photos.append(rec)
        writer.add_image("preview.png", lambda: _preview(model, inputs, result))
        base_colors = {i: tuple(m["base_color"]) for i, m in enumerate(manifest["materials"])} if manifest else None
        return writer.finish(model=model, job_name=name, vertices=result.vertices, identity=result.identity,
                             photos=photos, texture_files=files, warnings=warnings, base_colors=base_colors,
                             extra={"edit": record})


def _preview(model: HeadModel, inputs: EditInputs, result: EditResult, size: int = 320) -> np.ndarray:
    """Before (top) and after (bottom), from the left, the front and the right, under the edit's light."""
    from ..appearance.relight import render_lit

    centre = head_centre(model, inputs.vertices)
    rows = []
    for verts, maps, light, weights in ((inputs.vertices, inputs.maps, inputs.light, inputs.expression),
                                        (result.vertices, result.maps, result.light, result.expression)):
        posed = verts + np.tensordot(weights, model.expression_basis, axes=1)
        tiles = []
        for yaw in (-35.0, 0.0, 35.0):
            cam, m = orbit_camera(centre, yaw, 0.0, size)
            image, _ = render_lit(model, posed @ m[:3, :3].T + m[:3, 3], cam, maps, sh.rotate(light, m[:3, :3]),
                                  None, size)
            tiles.append(image)
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0)


def read_marks(path: str | Path) -> list[dict]:
    """The watermark of every albedo map of a bundle, or of one image file: ``[{file, marked, payload,
    confidence, matches}]`` (``matches``: the payload is the digest of the manifest's ``edit`` record as it is now,
    so a record changed after the edit, or a mark copied from another edit, does not match)."""
    import cv2

    path = Path(path).expanduser()
    expected = None
    if path.is_dir():
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            files = [path / m["textures"]["base_color"] for m in manifest["materials"]
                     if m["textures"].get("base_color")]
            record = dict(manifest.get("edit") or {})
            recorded = record.pop("watermark", {}) or {}
            # the mark holds a digest of the record as written: a record edited afterwards no longer matches
            expected = f"{watermark.payload_for(record):016x}" if recorded else None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{path} is not a readable Likeness bundle ({exc}).",
                           "Pass a bundle folder or an image.") from exc
    elif path.is_file():
        files = [path]
    else:
        raise BadInput(f"{path} does not exist.", "Pass a bundle folder or an image file.")
    out = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise BadInput(f"{file} is not a readable image.", "Pass a bundle folder or a PNG/JPEG image.")
        payload, confidence = watermark.read(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        marked = watermark.is_marked(payload) and confidence > 0.2
        out.append({"file": str(file), "marked": marked, "payload": f"{payload:016x}" if marked else None,
                    "confidence": round(confidence, 3),
                    "matches": None if expected is None else (marked and f"{payload:016x}" == expected)})
    return out
