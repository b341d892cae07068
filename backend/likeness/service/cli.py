"""Command line: ``likeness reconstruct|demo|track|batch|relight|edit|create|watermark|models|serve``.

Exit status: 0 success, 2 a problem the user can fix (message and hint on stderr, no traceback),
1 an internal error, 3 a batch with failed jobs (their errors in its report), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Quiet the native logging of MediaPipe/TensorFlow Lite before they are imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The fit solves many small (~120²) systems: BLAS threads only add contention there (measured 3–25× slower
# per solve); the heavy image work runs in its own thread pool and in OpenCV's threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .. import __version__  # noqa: E402
from ..errors import BadInput, LikenessError  # noqa: E402


def _learned_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the expression encoder runs (default auto: a GPU when torch sees one)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--encoder", nargs="?", const="learned", choices=("learned", "smirk"),
                       help="read the expression with an encoder: learned (ours, the default of a bare --encoder and "
                            "of photos when torch is installed; docs/encoder.md) or smirk (SMIRK with your FLAME; "
                            "docs/flame_smirk.md); needs torch")
    which.add_argument("--no-encoder", dest="encoder", action="store_const", const=False,
                       help="read the expression from the landmarks and MediaPipe's scores only (no torch)")


def _progress(stage: str, fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {stage}: {message}", file=sys.stderr, flush=True)


def _reconstruct(photos: list[str], args: argparse.Namespace) -> int:
    from .pipeline import Engine, ReconstructRequest

    start = time.perf_counter()
    result = Engine(device=args.device).reconstruct(ReconstructRequest(
        photos=photos, output=args.output, texture_size=args.texture_size, model=args.model,
        name=args.name, device=args.device, refine=args.refine, encoder=args.encoder, lens_mm=args.lens,
        occlusion=args.occlusion),
        report=_progress)
    return _bundle_written(result, start)


def _bundle_written(result: dict, start: float) -> int:
    """Report a finished bundle job: its warnings and where the bundle is on stderr, its path on stdout."""
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Bundle written to {result['bundle']} in {time.perf_counter() - start:.1f} s "
          f"(preview: {Path(result['bundle']) / 'preview.png'})", file=sys.stderr)
    print(result["bundle"])
    return 0


def _track(args: argparse.Namespace) -> int:
    from .pipeline import Engine
    from ..capture.track import TrackRequest, run_track

    start = time.perf_counter()
    engine = Engine(use_blendshapes=args.blendshapes, device=args.device)
    result = run_track(engine, TrackRequest(
        video=args.video, output=args.output, model=args.model, head=not args.no_head,
        texture_size=args.texture_size, smooth=not args.no_smoothing, blendshapes=args.blendshapes,
        max_frames=args.max_frames, name=args.name, encoder=args.encoder,
        device=args.device),
        report=_progress)
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Tracked {result['frames']} frames at {result['fps']:g} fps in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    print(result["track"])
    return 0


def _relight(args: argparse.Namespace) -> int:
    import cv2

    from ..appearance.relight import bundle_head, named_light, relight

    output = Path(args.output)
    if not 16 <= args.size <= 8192:
        raise BadInput(f"--size {args.size} is out of range.", "Use a size from 16 to 8192 pixels.")
    if not output.parent.is_dir():
        raise BadInput(f"The folder {output.parent} does not exist.", "Create it first or choose another output.")
    model, manifest, textures = bundle_head(args.bundle)
    if not 1 <= args.photo <= len(manifest["photos"]):
        raise BadInput(f"The bundle has {len(manifest['photos'])} photo(s); --photo {args.photo} is not one.",
                       "Use a number from 1 to the number of photos.")
    photo = manifest["photos"][args.photo - 1]
    rgb = None
    if not args.grey:
        root = Path(args.bundle).resolve()
        file = (root / photo["path"]).resolve()
        if not file.is_relative_to(root) or (image := cv2.imread(str(file))) is None:
            raise BadInput(f"The bundle's photo {photo['path']} cannot be read.", "Use --grey, or reconstruct again.")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    image, _ = relight(model, photo, textures, named_light(args.light, photo), rgb, args.size)
    ok, data = cv2.imencode(output.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BadInput(f"Cannot write an image with the suffix '{output.suffix}'.", "Use .png or .jpg.")
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_bytes(data.tobytes())
    tmp.replace(output)
    print(output)
    return 0


def _edit(args: argparse.Namespace) -> int:
    from ..edit.job import EditRequest, parse_what, run
    from .pipeline import Engine

    start = time.perf_counter()
    create = args.command == "create"
    request = EditRequest(
        prompt=args.prompt, output=args.output, bundle=None if create else args.bundle,
        negative_prompt=args.negative_prompt, what=parse_what(args.what or ("albedo,shape" if create else "albedo")),
        strength=args.strength, steps=args.steps, seed=args.seed, device=args.device, region=args.region,
        size=args.size, guidance_scale=args.guidance, sd_model=args.sd_model, model=args.model,
        texture_size=getattr(args, "texture_size", 1024), name=args.name)
    result = run(Engine(use_blendshapes=False), request, report=_progress)
    return _bundle_written(result, start)


def _watermark(args: argparse.Namespace) -> int:
    from ..edit.job import read_marks

    marks = read_marks(args.path)
    for mark in marks:
        state = f"marked: Likeness text edit {mark['payload']}" if mark["marked"] else "no Likeness mark found"
        match = {None: "", True: ", matches the manifest's edit record",
                 False: ", does NOT match the manifest's edit record"}[mark["matches"]]
        print(f"{mark['file']}: {state} (confidence {mark['confidence']:.2f}){match}")
    return 0 if any(m["marked"] for m in marks) else 3


def _batch(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..capture.images import check_lens
    from .batch import read_spec
    from .batch_run import run_batch, summary_table

    if not 64 <= args.texture_size <= 8192:
        raise BadInput(f"Texture size {args.texture_size} is out of range.", "Use a size from 64 to 8192.")
    jobs = read_spec(args.spec, args.texture_size)
    check_lens(args.lens)  # refused once, not in every job
    options = tuple((k, v) for k, v in (("refine", args.refine), ("occlusion", args.occlusion), ("lens_mm", args.lens))
                    if v) + ((("encoder", False),) if args.no_encoder else ())
    jobs = [replace(job, options=options if job.kind == "photos" else tuple(o for o in options if o[0] == "encoder"))
            for job in jobs]
    workers = args.workers or (0 if args.ray else max(1, (os.cpu_count() or 2) // 2))
    report = run_batch(jobs, args.output, workers, args.ray, args.model, spec=args.spec,
                       show_progress=not args.quiet)
    if not args.quiet:
        print(summary_table(report), file=sys.stderr)
    print(Path(args.output).resolve() / "batch_report.json")
    return 0 if report["summary"]["failed"] == 0 else 3


def _edit_options(p: argparse.ArgumentParser, create: bool) -> None:
    p.add_argument("--prompt", required=True, help="what the head should become, e.g. \"older, with a grey beard\"")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    p.add_argument("--what", help="comma-separated parts that may change: albedo, shape, expression, light "
                                  f"(default {'albedo,shape' if create else 'albedo'})")
    p.add_argument("--strength", type=float, default=0.5, help="0–1: how far the edit may move (default 0.5)")
    p.add_argument("--steps", type=int, default=200, help="score-distillation steps (default 200; 0: light words only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--region", help="only change this region: face, skin, lips, eyes, nose, brows, scalp")
    p.add_argument("--size", type=int, default=512, help="rendered view size in px (the model's resolution, 512)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (default 7.5)")
    p.add_argument("--sd-model", help="diffusers Stable Diffusion folder (default: the installed one)")
    p.add_argument("--model", help="head-model npz (default: the installed ICT model)")
    p.add_argument("--name", help="job name of the new bundle")
    p.add_argument("-o", "--output", required=True, help="new bundle folder to create (must not exist)")


def astronaut_photo() -> Path:
    """The public-domain astronaut portrait (Eileen Collins, NASA) that ships inside scikit-image."""
    try:
        import skimage.data
    except ImportError as exc:
        raise BadInput("The demo photo comes with scikit-image, which is not installed.",
                       "pip install scikit-image (or `pip install likeness[demo]`).") from exc
    path = Path(skimage.data.__file__).parent / "astronaut.png"
    if not path.is_file():
        raise BadInput(f"scikit-image has no astronaut.png at {path}.", "Reinstall scikit-image.")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="likeness", description="Photos of a person → 3D head bundle.")
    parser.add_argument("--version", action="version", version=f"likeness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def job_options(p: argparse.ArgumentParser, output_required: bool) -> None:
        p.add_argument("-o", "--output", required=output_required, help="bundle folder to create (must not exist)")
        p.add_argument("--model", help="head-model npz (default: the installed ICT model), or flame (your installed "
                                        "FLAME, read by --encoder smirk; docs/flame_smirk.md)")
        p.add_argument("--texture-size", type=int, default=2048, help="texture width and height (default 2048)")
        _learned_options(p)
        p.add_argument("--name", help="job name (default: the first photo's name)")
        p.add_argument("--refine", action="store_true",
                       help="refine each photo's fit against the photo's lip edges (under 1 s per photo)")
        p.add_argument("--lens", type=float, metavar="MM",
                       help="the lens of photos without EXIF, mm full-frame equivalent (default 50; a portrait from "
                            "a few metres: 85 or more; a phone's main camera: 26)")
        p.add_argument("--occlusion", action="store_true",
                       help="divide the head's own occlusion (eye sockets, the sides of the nose, creases) out of the "
                            "albedo as well: truer under a new light in Blender, flatter under even light")

    rec = sub.add_parser("reconstruct", help="photos of one person → bundle")
    rec.add_argument("photos", nargs="+", help="photos of the same person")
    job_options(rec, True)
    demo = sub.add_parser("demo", help="reconstruct the astronaut portrait that ships with scikit-image")
    job_options(demo, False)

    track = sub.add_parser("track", help="video of a face → per-frame ARKit weights, head pose and gaze")
    track.add_argument("video", help="video file (anything OpenCV reads)")
    track.add_argument("-o", "--output", required=True, help="folder to create (must not exist)")
    track.add_argument("--model", help="head-model npz (default: the installed ICT model)")
    track.add_argument("--no-head", action="store_true", help="skip the textured head bundle (output/head)")
    track.add_argument("--texture-size", type=int, default=1024, help="head texture size (default 1024)")
    track.add_argument("--no-smoothing", action="store_true", help="raw per-frame values (lost frames bridged)")
    track.add_argument("--blendshapes", action="store_true",
                       help="use MediaPipe's learned blendshape scores as evidence (slower; needs that model)")
    _learned_options(track)
    track.add_argument("--max-frames", type=int, help="only the first N frames")
    track.add_argument("--name", help="name of the head bundle (default: the video's name)")

    relight = sub.add_parser("relight", help="a bundle's head under another light, as an image (no Blender)")
    relight.add_argument("bundle", help="bundle folder")
    relight.add_argument("--light", default="photo",
                         help="photo (the photo's estimated light), left, right, top, front, a JSON file of "
                              "9 [r, g, b] SH rows (head frame), or words: \"warm sunset from the left\"")
    relight.add_argument("--photo", type=int, default=1, help="whose camera to render from (default 1)")
    relight.add_argument("--size", type=int, default=1024, help="long side of the image in pixels (default 1024)")
    relight.add_argument("--grey", action="store_true", help="grey background instead of the photo")
    relight.add_argument("-o", "--output", required=True, help="image to write (.png or .jpg)")

    edit = sub.add_parser("edit", help="change a bundle's head by a text prompt (Stable Diffusion) → new bundle")
    edit.add_argument("bundle", help="bundle folder to edit (left unchanged)")
    _edit_options(edit, create=False)
    create = sub.add_parser("create", help="a new head from a text prompt alone, starting from the mean head")
    _edit_options(create, create=True)
    create.add_argument("--texture-size", type=int, default=1024, help="texture size (default 1024)")
    mark = sub.add_parser("watermark", help="read the invisible mark of a text edit (exit 3: none found)")
    mark.add_argument("path", help="bundle folder or image")

    models = sub.add_parser("models", help="install or list head and landmark models")
    msub = models.add_subparsers(dest="models_command", required=True)
    inst = msub.add_parser("install", help="install a model (download, or --from a local copy)")
    inst.add_argument("name", help="ict, mediapipe-blendshapes, sd (Stable Diffusion, for text edits), flame "
                                   "(your generic_model.pkl) or smirk (your SMIRK_em1.pt); the last three --from only")
    inst.add_argument("--from", dest="source", help="local npz, task file, upstream checkout or diffusers folder")
    msub.add_parser("list", help="show installed models")

    batch = sub.add_parser("batch", help="many people or videos: a folder, CSV/JSON job list or glob → bundles")
    batch.add_argument("spec", help="folder (a sub-folder of photos per person, or a loose photo or video per "
                                    "job), jobs.csv / jobs.json (docs/batch.md), or a quoted glob")
    batch.add_argument("-o", "--output", required=True, help="folder for the bundles and batch_report.json "
                                                             "(finished bundles in it are skipped)")
    batch.add_argument("--workers", type=int, default=0,
                       help="worker processes, one warm engine each (default: local 1 per 2 cores; Ray: 1 per CPU)")
    batch.add_argument("--ray", metavar="ADDRESS", help="run on the Ray cluster at ADDRESS (host:port or auto); "
                                                        "needs `pip install likeness[ray]`")
    batch.add_argument("--texture-size", type=int, default=2048, help="texture size of photo jobs (default 2048; "
                                                                      "video heads at most 1024)")
    batch.add_argument("--model", help="head-model npz (default: the installed ICT model)")
    batch.add_argument("--quiet", action="store_true", help="no progress or table, only the report's path")
    batch.add_argument("--refine", action="store_true", help="photo jobs: refine each fit against the lip edges")
    batch.add_argument("--lens", type=float, metavar="MM", help="photo jobs: the lens of photos without EXIF, mm "
                                                                 "full-frame equivalent (default 50)")
    batch.add_argument("--occlusion", action="store_true",
                       help="photo jobs: divide the head's own occlusion out of the albedo (docs/quality.md 4)")
    batch.add_argument("--no-encoder", action="store_true",
                       help="every job: read the expression from the landmarks (and MediaPipe's scores) without the "
                            "learned expression encoder, which is the default where a worker has torch")

    serve = sub.add_parser("serve", help="backend for the Blender add-on: JSON lines on stdin/stdout")
    serve.add_argument("--log", help="write logs here instead of stderr")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "reconstruct":
        return _reconstruct(args.photos, args)
    if args.command == "demo":
        args.output = args.output or str(Path("out") / "astronaut")
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        return _reconstruct([str(astronaut_photo())], args)
    if args.command == "track":
        return _track(args)
    if args.command == "relight":
        return _relight(args)
    if args.command in ("edit", "create"):
        return _edit(args)
    if args.command == "watermark":
        return _watermark(args)
    if args.command == "batch":
        return _batch(args)
    if args.command == "models":
        from . import models

        if args.models_command == "install":
            path = models.install(args.name, args.source, log=lambda m: print(m, file=sys.stderr))
            print(path)
        else:
            for m in models.list_models():
                state = "installed" if m["installed"] else "missing  "
                print(f"{m['name']:24s} {state} {m['path']}  ({m['license']})")
        return 0
    if args.command == "serve":
        from .serve import main as serve_main

        return serve_main(args.log)
    raise AssertionError(args.command)


def _bare_encoder(argv: list[str]) -> list[str]:
    """A bare ``--encoder`` followed by a photo or video means the learned encoder (as before ``--encoder smirk``)."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--encoder" and out[i + 1] not in ("learned", "smirk") and not out[i + 1].startswith("-"):
            out[i] = "--encoder=learned"
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_bare_encoder(sys.argv[1:] if argv is None else argv))
    try:
        return run(args)
    except LikenessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
