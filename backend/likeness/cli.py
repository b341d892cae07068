"""Command line: ``likeness reconstruct|demo|models|serve``.

Exit status: 0 success, 2 a problem the user can fix (message and hint on stderr, no traceback),
1 an internal error, 130 interrupted.
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

from . import __version__  # noqa: E402
from .errors import BadInput, LikenessError  # noqa: E402


def _progress(stage: str, fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {stage}: {message}", file=sys.stderr, flush=True)


def _reconstruct(photos: list[str], args: argparse.Namespace) -> int:
    from .pipeline import Engine, ReconstructRequest

    start = time.perf_counter()
    result = Engine().reconstruct(ReconstructRequest(
        photos=photos, output=args.output, texture_size=args.texture_size, model=args.model,
        name=args.name, device=args.device), report=_progress)
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Bundle written to {result['bundle']} in {time.perf_counter() - start:.1f} s "
          f"(preview: {Path(result['bundle']) / 'preview.png'})", file=sys.stderr)
    print(result["bundle"])
    return 0


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
        p.add_argument("--model", help="head-model npz (default: the installed ICT model)")
        p.add_argument("--texture-size", type=int, default=2048, help="texture width and height (default 2048)")
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="compute device (the current pipeline runs on the CPU everywhere)")
        p.add_argument("--name", help="job name (default: the first photo's name)")

    rec = sub.add_parser("reconstruct", help="photos of one person → bundle")
    rec.add_argument("photos", nargs="+", help="photos of the same person")
    job_options(rec, True)
    demo = sub.add_parser("demo", help="reconstruct the astronaut portrait that ships with scikit-image")
    job_options(demo, False)

    models = sub.add_parser("models", help="install or list head and landmark models")
    msub = models.add_subparsers(dest="models_command", required=True)
    inst = msub.add_parser("install", help="install a model (download, or --from a local copy)")
    inst.add_argument("name", help="ict or mediapipe-blendshapes")
    inst.add_argument("--from", dest="source", help="local npz, task file or upstream checkout")
    msub.add_parser("list", help="show installed models")

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
