"""The add-on's one warm backend process per Blender session, and the requests it is working on (no bpy).

The operators, the timer callback and the Python API share :data:`SESSION`. The process is stopped when the
add-on is disabled (without waiting for it on the UI thread) and, through ``atexit``, when Blender quits: then
every backend this session started and that is still running gets a short wait and is killed, so no backend
outlives Blender.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend_client import BackendClient, backend_env
from .errors import BackendError

#: Environment variable naming the backend Python; wins over the preferences (scripts, tests, CI).
PYTHON_ENV_VAR = "LIKENESS_BACKEND_PYTHON"
NOT_SET_UP_HINT = ("Open Edit > Preferences > Add-ons > Likeness and press 'Set up backend', "
                   "or set the backend Python path there.")
#: File 'Set up backend' writes into the venv once every step has succeeded.
READY_MARKER = ".likeness-ready"
#: Seconds a backend gets to exit when Blender quits before it is killed.
EXIT_WAIT = 2.0


def venv_python(venv_dir: Path) -> Path:
    """The interpreter of a virtual environment (``bin/python`` or ``Scripts\\python.exe``)."""
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def resolve_python(preference: str, default_venv: Path) -> Path:
    """Backend interpreter: ``$LIKENESS_BACKEND_PYTHON``, else the preference, else the set-up venv's.

    The set-up venv counts only once its set-up finished (:data:`READY_MARKER`), so a half-installed venv is
    reported as not set up instead of failing later.
    """
    for candidate, source in ((os.environ.get(PYTHON_ENV_VAR, ""), PYTHON_ENV_VAR),
                              (preference, "the backend Python preference")):
        if candidate.strip():
            path = Path(candidate.strip()).expanduser()
            if not path.is_file():
                raise BackendError(f"The backend Python '{path}' (from {source}) does not exist.", NOT_SET_UP_HINT,
                                   kind="NotSetUp")
            return path
    path = venv_python(default_venv)
    if not path.is_file() or not (default_venv / READY_MARKER).is_file():
        raise BackendError("The backend is not set up (or its set-up did not finish).",
                           "Press Set up backend in the add-on preferences.", kind="NotSetUp")
    return path


@dataclass
class Request:
    """A request in flight: ``kind`` is the op (``reconstruct``, ``hello``), ``context`` what the caller needs."""

    id: str
    kind: str
    context: dict[str, Any] = field(default_factory=dict)
    fraction: float = 0.0
    message: str = ""
    #: ``time.monotonic()`` after which a cancelled request that has not ended gets its backend killed.
    cancel_deadline: float | None = None


class Session:
    """Owns the warm :class:`BackendClient` and the table of requests it is answering."""

    def __init__(self) -> None:
        self.client: BackendClient | None = None
        self.requests: dict[str, Request] = {}
        self._stopped: list[BackendClient] = []  # asked to exit; killed at Blender's quit if still running

    def ensure_client(self, python: Path, log_path: Path) -> BackendClient:
        """The running client for ``python``, starting (or restarting) it when needed; never waits for it."""
        client = self.client
        if client is not None and client.alive:
            if Path(client.python) == Path(python):
                return client
            if self.requests:
                raise BackendError("The backend is busy with another job.", "Wait for it to finish or cancel it.")
        self.stop()
        client = BackendClient(python, log_path, env=backend_env())
        client.start()
        self.client = client
        return client

    def submit(self, kind: str, params: dict[str, Any] | None, context: dict[str, Any] | None = None) -> Request:
        """Send ``kind`` with ``params`` on the running client and remember it."""
        if self.client is None:
            raise BackendError("The backend is not running.", NOT_SET_UP_HINT, kind="NotSetUp")
        request = Request(self.client.send(kind, params), kind, context or {})
        self.requests[request.id] = request
        return request

    def active(self, kind: str) -> Request | None:
        """The oldest request of ``kind`` still waiting for its result."""
        return next((r for r in self.requests.values() if r.kind == kind), None)

    def stop(self) -> None:
        """Shut the backend down and forget its requests; returns at once (see :meth:`BackendClient.shutdown`)."""
        self._stopped = [c for c in self._stopped if not c.join(0)]
        if self.client is not None:
            self.client.shutdown()
            self._stopped.append(self.client)
        self.client = None
        self.requests.clear()

    def stop_at_exit(self) -> None:
        """Blender quits: give every backend still running :data:`EXIT_WAIT` s to exit, then kill it."""
        clients = [*self._stopped, *([self.client] if self.client is not None else [])]
        self.client, self._stopped = None, []
        self.requests.clear()
        for client in clients:
            client.shutdown(EXIT_WAIT, block=True)


SESSION = Session()
atexit.register(SESSION.stop_at_exit)
