"""The bad-input corpus (tests/corpus/make_corpus.py) through ``likeness reconstruct``.

Each case must end with its documented exit status and message, never a traceback, and leave the output folder
either absent or complete (a readable bundle with every photo). Most cases run the CLI in-process on one warm
engine; a representative few run ``python -m likeness`` as a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from corpus.make_corpus import CASES, Case, Unavailable, exif_rotated
from likeness.service import cli, pipeline
from likeness.service.bundle import read_bundle
from likeness.model.geometry import head_angles
from likeness.capture.images import load_photo

#: Peak memory of a CLI run on the 12000×9000 photo, above a run on a normal photo (bytes).
HUGE_PHOTO_EXTRA_RSS = 400e6


def run_process(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, str, int]:
    """``python -m likeness ARGS`` as a real process: exit status, stderr, and its peak RSS in bytes.

    The peak is the process's own high-water mark (``VmHWM`` in /proc, which starts afresh at exec), read
    until it exits; getrusage would report this test process's size instead (Linux carries it over the fork).
    """
    proc = subprocess.Popen([sys.executable, "-m", "likeness", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **env))
    peak = [0]

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                hwm = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
                peak[0] = max(peak[0], int(hwm.split()[1]) * 1024)
            except (OSError, StopIteration):
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, stderr = proc.communicate(timeout=300)
    watcher.join()
    return proc.returncode, stderr, peak[0]


def run_case(case: Case, tmp_path: Path, ict_path: Path, engine, monkeypatch,
             capsys) -> tuple[int, str, Path, int, int]:
    """Build the case and run it; exit status, stderr, the output folder, peak RSS (subprocess only), photos."""
    if case.needs_non_root and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    if os.path.isabs(case.output) and not Path(case.output).parent.is_dir():
        pytest.skip(f"no {Path(case.output).parent} on this system")
    try:
        photos = case.build(tmp_path / "case")
    except Unavailable as exc:
        pytest.skip(str(exc))
    output = Path(case.output) if os.path.isabs(case.output) else tmp_path / "case" / case.output
    args = ["reconstruct", *map(str, photos), "-o", str(output), "--model", str(ict_path),
            "--texture-size", str(case.texture_size)] + (["--lens", str(case.lens_mm)] if case.lens_mm else [])
    if case.subprocess:
        code, stderr, rss = run_process(args, {"LIKENESS_FAULT": case.fault}, tmp_path)
        return code, stderr, output, rss, len(photos)
    monkeypatch.setattr(pipeline, "Engine", lambda **_: engine)  # one warm engine for all in-process cases
    monkeypatch.setenv("LIKENESS_FAULT", case.fault)
    code = cli.main(args)
    return code, capsys.readouterr().err, output, 0, len(photos)


def assert_complete_or_absent(output: Path, existed: bool, photo_count: int | None) -> None:
    """No temporary leftovers; the bundle complete (readable, every photo and texture there) or absent."""
    if output.parent.is_dir():
        assert not [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.tmp")]
    if photo_count is None:
        assert output.exists() == existed and (not existed or not any(output.iterdir()))
        return
    manifest, arrays = read_bundle(output)
    assert len(manifest["photos"]) == photo_count and arrays["vertices"].shape[1] == 3
    files = [p["path"] for p in manifest["photos"]] + [t for m in manifest["materials"] for t in m["textures"].values()]
    assert all((output / f).is_file() for f in files) and (output / "preview.png").is_file()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_case(case, tmp_path, ict_path, engine, monkeypatch, capsys):
    code, stderr, output, _, count = run_case(case, tmp_path, ict_path, engine, monkeypatch, capsys)
    assert code == case.exit_code, stderr
    assert case.message in stderr, stderr
    assert "Traceback" not in stderr
    if case.absent:
        assert case.absent not in stderr
    if code:
        assert "error:" in stderr and "hint:" in stderr
    assert_complete_or_absent(output, existed=case.name == "output_exists", photo_count=None if code else count)


def test_corpus_has_every_kind_of_case():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)
    assert {c.exit_code for c in CASES} == {0, 2}
    assert sum(c.subprocess for c in CASES) >= 5


def test_huge_photo_is_downscaled_without_a_memory_spike(tmp_path, ict_path, engine, monkeypatch, capsys):
    """A 12000×9000 JPEG costs at most a few hundred MB more than a normal photo (decoded at reduced scale)."""
    by_name = {c.name: c for c in CASES}
    peaks = {}
    for name in ("huge_12000x9000", "cmyk_jpeg"):
        case = Case(name, by_name[name].build, 0, "Bundle written", subprocess=True)
        code, stderr, _, peaks[name], _ = run_case(case, tmp_path / name, ict_path, engine, monkeypatch, capsys)
        assert code == 0, stderr
    assert read_bundle(tmp_path / "huge_12000x9000" / "case" / "out")[0]["photos"][0]["image_size"] == [4096, 3072]
    assert peaks["huge_12000x9000"] - peaks["cmyk_jpeg"] < HUGE_PHOTO_EXTRA_RSS, peaks


def test_exif_orientations_all_fit_the_upright_photo(tmp_path, ict_path, engine):
    """The 8 EXIF orientations of one photo give the same landmarks and head pose as the upright photo."""
    fits = []
    for orientation in range(1, 9):
        photo = load_photo(exif_rotated(orientation)(tmp_path)[0])
        assert photo.size == (480, 400)
        result, found = engine.analyse([photo], str(ict_path))
        fits.append((found[0].points_px, head_angles(result.photos[0].rotation), found[0].interocular_px))
    upright, angles, iod = fits[0]
    for orientation, (points, pose, _) in enumerate(fits[1:], start=2):
        error = np.linalg.norm(points - upright, axis=1).mean() / iod
        assert error < 0.03, (orientation, error)
        assert np.abs(np.subtract(pose, angles)).max() < 3.0, (orientation, pose, angles)
