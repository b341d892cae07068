"""'Set up backend': a private virtual environment with the backend installed (no bpy).

Steps, run one after another in a background thread, each a subprocess whose output goes to a log file:

1. ``<Blender's Python> -m venv <venv>``
2. ``<venv python> -m pip install <backend_src>``: the backend package carried inside the add-on zip, plus its
   PyPI dependencies (the only step that uses the network)
3. ``<venv python> -m likeness.learned.setup_torch``: the torch build that fits the machine (CUDA where an NVIDIA
   driver is present, the small CPU build on other Linux machines, PyPI's build on macOS and Windows), for the
   expression encoder; optional: when it fails the set-up goes on and the backend runs without the encoder
4. ``<venv python> -m pip install <backend_src>[edit]``: diffusers and transformers for text edits (optional,
   like torch; the Stable Diffusion weights themselves are never downloaded: README, Text edits)
5. ``<venv python> -m likeness models install ict``: the head model

Only when every step succeeded is the marker file ``<venv>/.likeness-ready`` written (and it is removed before
the first step), so a venv whose set-up failed half-way is never taken for a working one. The UI thread only
reads :attr:`BackendSetup.stage` / :attr:`fraction` / :attr:`error` / :attr:`done` from a timer.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

from .backend_client import BackendClient, backend_env
from .errors import LikenessError
from .session import READY_MARKER, venv_python

#: Steps whose failure is written to the log but does not stop the set-up (torch is optional).
OPTIONAL_STAGES = ("Installing torch for this machine (the expression encoder)",
                   "Installing diffusers and transformers (text edits)")
#: Seconds the set-up waits for a backend that was just asked to stop before it changes the venv.
PREVIOUS_BACKEND_WAIT = 15.0

SOURCE_DIR_NAME = "backend_src"


def backend_source_dir(addon_dir: Path) -> Path:
    """The backend package source: ``backend_src/`` in the installed add-on, or the repository in a checkout."""
    for candidate in (addon_dir / SOURCE_DIR_NAME, addon_dir.parent):
        if (candidate / "pyproject.toml").is_file() and (candidate / "backend" / "likeness").is_dir():
            return candidate
    raise LikenessError("The add-on does not contain the backend package (backend_src).",
                        "Reinstall the add-on from a zip made by build_addon.py.")


def backend_module(name: str) -> ModuleType:
    """A backend module that needs nothing beyond the standard library and NumPy (``arkit``,
    ``appearance.light``: its dotted name inside the ``likeness`` package), loaded from the backend source the add-on
    ships, so the add-on and the backend share one copy of its code."""
    qualified = f"{__package__}._backend_{name.replace('.', '_')}"
    if qualified not in sys.modules:
        path = (backend_source_dir(Path(__file__).resolve().parent) / "backend" / "likeness"
                / Path(*name.split(".")).with_suffix(".py"))
        spec = importlib.util.spec_from_file_location(qualified, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module  # dataclass/typing machinery looks modules up by name
        spec.loader.exec_module(module)
    return sys.modules[qualified]


class BackendSetup:
    """Creates ``venv_dir`` and installs the backend into it, in a daemon thread.

    ``previous`` is a backend client that was just asked to stop: the thread waits for its process to exit
    before touching the venv it may run from.
    """

    def __init__(self, venv_dir: Path, source_dir: Path, log_path: Path, base_python: str = sys.executable,
                 previous: BackendClient | None = None) -> None:
        self.venv_dir = venv_dir
        self.log_path = log_path
        self.previous = previous
        python = str(venv_python(venv_dir))
        self.steps: list[tuple[str, list[str]]] = [
            ("Creating the backend's Python environment", [base_python, "-m", "venv", str(venv_dir)]),
            ("Installing the backend and its dependencies (downloads several hundred MB)",
             [python, "-m", "pip", "install", "--disable-pip-version-check", str(source_dir)]),
            (OPTIONAL_STAGES[0], [python, "-m", "likeness.learned.setup_torch"]),
            (OPTIONAL_STAGES[1], [python, "-m", "pip", "install", "--disable-pip-version-check", f"{source_dir}[edit]"]),
            ("Installing the ICT head model", [python, "-m", "likeness", "models", "install", "ict"]),
        ]
        self.stage = "Waiting to start"
        self.fraction = 0.0
        self.done = False
        self.error: LikenessError | None = None
        self._process: subprocess.Popen | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="likeness-backend-setup", daemon=True)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop the current step; the setup ends with an error saying it was cancelled."""
        self._cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def _run(self) -> None:
        marker = self.venv_dir / READY_MARKER
        try:
            if self.previous is not None:
                self.previous.join(PREVIOUS_BACKEND_WAIT)
            marker.unlink(missing_ok=True)
            with open(self.log_path, "ab") as log:
                for index, (stage, command) in enumerate(self.steps):
                    self.stage, self.fraction = stage, index / len(self.steps)
                    log.write(f"\n--- {time.strftime('%H:%M:%S')} {stage}: {' '.join(command)}\n".encode())
                    log.flush()
                    self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                     stderr=subprocess.STDOUT, env=backend_env())
                    code = self._process.wait()
                    if self._cancelled:
                        raise LikenessError("Backend set-up was cancelled.", "Press 'Set up backend' to start again.")
                    if code != 0 and stage in OPTIONAL_STAGES:
                        log.write(f"--- {stage} failed (exit code {code}); continuing without it\n".encode())
                        continue
                    if code != 0:
                        raise LikenessError(f"{stage} failed (exit code {code}).",
                                            f"See the log at {self.log_path}; check the internet connection.")
            marker.write_text("Written by the Likeness add-on's 'Set up backend' after every step succeeded.\n",
                              encoding="utf-8")
            self.stage, self.fraction = "Backend is set up", 1.0
        except LikenessError as exc:
            self.error = exc
        except OSError as exc:
            self.error = LikenessError(f"Backend set-up could not run ({exc}).", f"See the log at {self.log_path}.")
        finally:
            self.done = True
