"""Install the torch build that fits this machine: ``python -m likeness.learned.setup_torch [--dry-run]``.

Standard library only, so it also runs as a plain script before the backend is installed (scripts/test.sh).

The add-on's **Set up backend** runs this after installing the backend. Where an NVIDIA driver is present
(``nvidia-smi`` on the PATH), on macOS (Apple GPUs through MPS) and on Windows, PyPI's own ``torch`` is the
right build. On Linux without an NVIDIA GPU that build would bring several GB of CUDA libraries for nothing, so
the CPU build (``+cpu``, about 200 MB) comes first, then the plain one if no index offers the CPU build.
``safetensors`` (the checkpoint format) comes with it. Exit status 0 when ``import torch`` works afterwards.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys

CPU_BUILD = "torch==2.13.0+cpu"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def candidates(system: str | None = None, nvidia: bool | None = None) -> list[list[str]]:
    """pip ``install`` arguments to try in order, for ``system`` (platform.system()) with or without NVIDIA."""
    system = system or platform.system()
    nvidia = shutil.which("nvidia-smi") is not None if nvidia is None else nvidia
    if system == "Linux" and not nvidia:
        return [[CPU_BUILD, "safetensors"], ["--extra-index-url", CPU_INDEX, CPU_BUILD, "safetensors"],
                ["torch", "safetensors"]]
    return [["torch", "safetensors"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands, install nothing")
    parser.add_argument("--quiet", action="store_true", help="pass --quiet to pip")
    args = parser.parse_args(argv)
    for extra in candidates():
        command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                   *(["--quiet"] if args.quiet else []), *extra]
        print(" ".join(command), flush=True)
        if args.dry_run:
            continue
        if subprocess.run(command).returncode == 0 and subprocess.run([sys.executable, "-c", "import torch"]).returncode == 0:
            return 0
    return 0 if args.dry_run else 1


if __name__ == "__main__":
    sys.exit(main())
