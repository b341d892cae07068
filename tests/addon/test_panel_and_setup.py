"""Photo list operators, backend interpreter choice, output folders, and the 'Set up backend' runner."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import bpy
import pytest
from PIL import Image


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    files = []
    for name in ("front.jpg", "side.png"):
        Image.new("RGB", (16, 16), (200, 150, 120)).save(tmp_path / name)
        files.append(tmp_path / name)
    return files


def listed(scene) -> list[str]:
    return [Path(p.filepath).name for p in scene.likeness.photos]


def test_add_photos_from_the_file_browser(addon, scene, photos):
    files = [{"name": p.name} for p in photos] + [{"name": "missing.jpg"}]
    assert bpy.ops.likeness.add_photos(directory=str(photos[0].parent), files=files) == {"FINISHED"}
    assert listed(scene) == ["front.jpg", "side.png"]
    bpy.ops.likeness.add_photos(directory=str(photos[0].parent), files=[{"name": "front.jpg"}])
    assert listed(scene) == ["front.jpg", "side.png"]  # no duplicates
    scene.likeness.active_photo = 0
    assert bpy.ops.likeness.remove_photo() == {"FINISHED"}
    assert listed(scene) == ["side.png"]


def test_add_images_already_loaded_in_blender(addon, scene, photos):
    bpy.data.images.load(str(photos[1]))
    bpy.data.images.new("generated", 4, 4)  # no file: skipped
    assert bpy.ops.likeness.add_loaded_images() == {"FINISHED"}
    assert listed(scene) == ["side.png"]
    assert scene.likeness.photos[0].filepath == str(photos[1].resolve())


def test_backend_python_choice(addon, tmp_path, monkeypatch):
    session = addon.session
    venv = tmp_path / "venv"
    monkeypatch.delenv(session.PYTHON_ENV_VAR, raising=False)
    with pytest.raises(addon.errors.BackendError, match="not set up") as info:
        session.resolve_python("", venv)
    assert "Set up backend" in info.value.hint
    python = session.venv_python(venv)
    python.parent.mkdir(parents=True)
    python.write_text("")
    with pytest.raises(addon.errors.BackendError, match=r"not set up \(or its set-up did not finish\)") as info:
        session.resolve_python("", venv)  # an interpreter but no marker: a set-up that failed half-way
    assert info.value.hint == "Press Set up backend in the add-on preferences." and info.value.kind == "NotSetUp"
    (venv / session.READY_MARKER).write_text("")
    assert session.resolve_python("", venv) == python
    assert session.resolve_python(sys.executable, venv) == Path(sys.executable)
    monkeypatch.setenv(session.PYTHON_ENV_VAR, str(tmp_path / "other"))
    with pytest.raises(addon.errors.BackendError, match=f"from {session.PYTHON_ENV_VAR}"):
        session.resolve_python(sys.executable, venv)


def test_output_folder_and_job_names(addon, tmp_path):
    assert addon.jobs.job_name("/photos/Jane Doe (1).JPG") == "Jane_Doe_1"
    assert addon.jobs.job_name("/photos/(((.jpg") == "head"
    (tmp_path / "jane").mkdir()
    (tmp_path / "jane_2").mkdir()
    assert addon.jobs.unique_output(tmp_path, "jane") == tmp_path / "jane_3"
    assert bpy.data.filepath == ""  # unsaved file: bundles go to the add-on's user folder
    assert addon.paths.output_folder("//likeness/") == addon.paths.user_dir() / "bundles"
    assert addon.paths.output_folder(str(tmp_path)) == tmp_path


def run_setup(setup, timeout: float = 30.0) -> None:
    """Start the set-up and wait, as the preferences' timer does, until it says it is done."""
    setup.start()
    deadline = time.monotonic() + timeout
    while not setup.done:
        assert time.monotonic() < deadline, "the set-up did not finish"
        time.sleep(0.05)


def test_setup_runs_steps_in_background_and_logs(addon, tmp_path):
    setup_module = addon.setup_backend
    source = setup_module.backend_source_dir(Path(addon.__file__).parent)
    assert (source / "pyproject.toml").is_file() and source.name == "backend_src"
    venv = tmp_path / "venv"
    setup = setup_module.BackendSetup(venv, source, tmp_path / "setup.log")
    assert [command[1:3] for _, command in setup.steps] == [["-m", "venv"], ["-m", "pip"],
                                                           ["-m", "likeness.learned.setup_torch"], ["-m", "pip"],
                                                           ["-m", "likeness"]]
    assert setup.steps[3][1][-1] == f"{source}[edit]"  # diffusers and transformers for text edits (optional)
    assert setup.steps[1][1][-1] == str(source)
    venv.mkdir()
    (venv / addon.session.READY_MARKER).write_text("")  # from an earlier set-up: must not survive a failed one
    setup.steps = [("Saying hello", [sys.executable, "-c", "print('hello from step 1')"]),
                   ("Failing", [sys.executable, "-c", "import sys; sys.exit(4)"]),
                   ("Never run", [sys.executable, "-c", "print('step 3')"])]
    run_setup(setup)
    assert "Failing failed (exit code 4)" in setup.error.message
    assert setup.stage == "Failing" and setup.fraction < 1.0
    log = (tmp_path / "setup.log").read_text()
    assert "hello from step 1" in log and "step 3" not in log
    assert not (venv / addon.session.READY_MARKER).exists()


def test_setup_marks_the_venv_ready_only_after_every_step(addon, tmp_path):
    venv = tmp_path / "venv"
    source = addon.setup_backend.backend_source_dir(Path(addon.__file__).parent)
    setup = addon.setup_backend.BackendSetup(venv, source, tmp_path / "setup.log")
    marker = venv / addon.session.READY_MARKER
    setup.steps = [("Making the venv folder", [sys.executable, "-c", f"import os; os.makedirs({str(venv)!r})"]),
                   ("Checking there is no marker yet",
                    [sys.executable, "-c", f"import os, sys; sys.exit(os.path.exists({str(marker)!r}))"])]
    run_setup(setup)
    assert setup.error is None and setup.fraction == 1.0
    assert marker.is_file()


def test_setup_waits_for_the_stopped_backend_before_touching_the_venv(addon, tmp_path):
    exited = tmp_path / "previous-backend-exited"

    class StoppingBackend:
        """Stands in for a client asked to stop whose process takes a moment to exit."""

        def join(self, timeout: float) -> bool:
            time.sleep(0.3)
            exited.write_text("")
            return True

    source = addon.setup_backend.backend_source_dir(Path(addon.__file__).parent)
    setup = addon.setup_backend.BackendSetup(tmp_path / "venv", source, tmp_path / "setup.log",
                                             previous=StoppingBackend())
    setup.steps = [("Checking the old backend is gone",
                    [sys.executable, "-c", f"import os, sys; sys.exit(not os.path.exists({str(exited)!r}))"])]
    (tmp_path / "venv").mkdir()
    run_setup(setup)
    assert setup.error is None, setup.error
