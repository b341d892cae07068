"""Build the installable Blender extension zip: ``dist/likeness-<version>.zip``.

The zip holds the add-on files of ``blender_addon/`` at its root (Blender extensions need
``blender_manifest.toml`` at the top level) plus ``backend_src/``: the backend package source
(``pyproject.toml``, ``README.md``, ``backend/likeness/**``) that "Set up backend" pip-installs into a
private virtual environment. The build is deterministic (sorted entries, fixed timestamps) and needs no
network.

Usage: ``python build_addon.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
ADDON_DIR = REPO / "blender_addon"
BACKEND_SRC_PREFIX = "backend_src"
#: Fixed timestamp of every zip entry, so that two builds of the same tree are byte-identical.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".git"}
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".zip"}


def addon_version(addon_dir: Path = ADDON_DIR) -> str:
    """Version string of the extension, read from its ``blender_manifest.toml``."""
    with open(addon_dir / "blender_manifest.toml", "rb") as f:
        return tomllib.load(f)["version"]


def _tree_files(root: Path) -> list[Path]:
    """Files under ``root`` (sorted, relative to it), without caches and build leftovers."""
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in SKIPPED_SUFFIXES:
            files.append(rel)
    return files


def zip_entries(repo: Path = REPO) -> list[tuple[str, Path]]:
    """(name in the zip, source file) pairs, in the order they are written."""
    entries = [(rel.as_posix(), repo / "blender_addon" / rel) for rel in _tree_files(repo / "blender_addon")]
    for name in ("pyproject.toml", "README.md"):
        if (repo / name).is_file():
            entries.append((f"{BACKEND_SRC_PREFIX}/{name}", repo / name))
    package = repo / "backend" / "likeness"
    for rel in _tree_files(package):
        entries.append((f"{BACKEND_SRC_PREFIX}/backend/likeness/{rel.as_posix()}", package / rel))
    return entries


def build(out_dir: Path = REPO / "dist", repo: Path = REPO) -> Path:
    """Write the extension zip into ``out_dir`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"likeness-{addon_version(repo / 'blender_addon')}.zip"
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, source in zip_entries(repo):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, source.read_bytes())
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
