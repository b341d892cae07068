"""build_addon.py: a Blender extension zip with the manifest at the root and the backend source inside."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import bpy

import build_addon
from .conftest import REPO


def test_zip_layout(addon_zip):
    with zipfile.ZipFile(addon_zip) as zf:
        names = zf.namelist()
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert addon_zip.name == f"likeness-{manifest['version']}.zip"
    assert manifest["id"] == "likeness" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0" and manifest["license"] == ["SPDX:MIT"]
    assert set(manifest["permissions"]) == {"files", "network"}
    expected_addon = {p.name for p in (REPO / "blender_addon").iterdir() if p.suffix in {".py", ".toml"}}
    assert expected_addon <= set(names)
    assert "backend_src/pyproject.toml" in names
    assert "backend_src/backend/likeness/__init__.py" in names
    backend_files = {p.relative_to(REPO).as_posix() for p in (REPO / "backend" / "likeness").rglob("*.py")
                     if "__pycache__" not in p.parts}
    assert {f"backend_src/{f}" for f in backend_files} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or ".egg-info" in n]
    assert not [n for n in names if n.startswith(("blender_addon/", "/")) or ".." in n]


def test_blender_validates_the_extension_zip(addon_zip):
    """Blender's own extension validator (what `blender --command extension validate` runs)."""
    validator = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    done = subprocess.run([sys.executable, str(validator), "validate", str(addon_zip)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr


def test_build_is_deterministic(addon_zip, tmp_path):
    again = build_addon.build(tmp_path)
    assert again.read_bytes() == addon_zip.read_bytes()


def test_addon_imports_only_blender_numpy_and_stdlib():
    """Inside Blender the add-on imports no torch, mediapipe or backend package: only bpy, numpy and stdlib."""
    imported = set()
    for source in (REPO / "blender_addon").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"bpy", "bpy_extras", "mathutils", "numpy"}
