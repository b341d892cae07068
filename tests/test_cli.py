"""The `likeness` command as a user runs it: a real subprocess, exit codes, messages."""

import json
import os
import subprocess
import sys

import pytest

from conftest import dev_photo


def likeness(*args, env=None, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "likeness", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def test_reconstruct_writes_a_bundle(ict_path, tmp_path):
    out = tmp_path / "bundle"
    proc = likeness("reconstruct", dev_photo("dev_002_london_009_03.jpg"), "-o", out, "--model", ict_path,
                    "--texture-size", 256)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out.resolve())
    assert "[100%]" in proc.stderr
    photos = json.loads((out / "manifest.json").read_text())["photos"]
    assert len(photos) == 1
    from likeness.learned.runtime import SHIPPED, torch_available
    # photos are read with the shipped expression encoder by default, where torch is installed
    assert ("expression_encoder" in photos[0]["fit"]["evidence"]) == (torch_available() and SHIPPED.is_file())
    plain = tmp_path / "plain"
    proc = likeness("reconstruct", dev_photo("dev_002_london_009_03.jpg"), "-o", plain, "--model", ict_path,
                    "--texture-size", 64, "--no-encoder")
    assert proc.returncode == 0, proc.stderr
    assert "expression_encoder" not in json.loads((plain / "manifest.json").read_text())["photos"][0]["fit"]["evidence"]


@pytest.mark.parametrize("case", ["not_an_image", "missing_model", "output_exists", "broken_encoder"])
def test_user_errors_exit_2_with_a_hint_and_no_traceback(ict_path, tmp_path, case):
    photo, model, out = dev_photo("dev_002_london_009_03.jpg"), ict_path, tmp_path / "out"
    env = {"LIKENESS_DATA_DIR": str(tmp_path / "data")}
    if case == "not_an_image":
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(b"\x00" * 100)
    elif case == "missing_model":
        model = tmp_path / "nope.npz"
    elif case == "broken_encoder":  # a checkpoint that is not one: refused, nothing written
        pytest.importorskip("torch")
        broken = tmp_path / "encoder.safetensors"
        broken.write_bytes(b"PK\x03\x04 not a checkpoint")
        env["LIKENESS_EXPRESSION_ENCODER"] = str(broken)
    else:
        out.mkdir()
    proc = likeness("reconstruct", photo, "-o", out, "--model", model, env=env)
    assert proc.returncode == 2
    if case == "broken_encoder":
        assert "expression encoder" in proc.stderr and not out.exists()
    assert "error:" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "manifest.json").exists()


def test_missing_installed_model_names_the_command(tmp_path):
    env = {"LIKENESS_DATA_DIR": str(tmp_path), "LIKENESS_ICT_MODEL": ""}
    proc = likeness("reconstruct", dev_photo("dev_002_london_009_03.jpg"), "-o", tmp_path / "o", env=env)
    assert proc.returncode == 2 and "likeness models install ict" in proc.stderr
