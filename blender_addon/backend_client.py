"""Client of the backend process ``<python> -m likeness serve`` (docs/protocol.md, protocol version 1).

No bpy here. The process talks JSON lines on stdin/stdout; its stderr goes to a log file. A daemon thread
reads stdout and pushes decoded events into a queue; :meth:`BackendClient.poll` drains the queue without
blocking, so Blender's UI thread never waits on the backend. The client checks the ``ready`` line (protocol
version), and turns a dead process into ``error`` events for the requests still waiting for an answer.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .errors import BackendError

PROTOCOL_VERSION = 1
SETUP_HINT = "Run 'Set up backend' again in the Likeness add-on preferences."


class BackendClient:
    """One backend process and its event queue.

    ``python`` is the backend's interpreter; ``log_path`` receives the process's stderr (and ``--log``).
    Events are the protocol's dicts (``progress``, ``result``, ``error``); the client adds ``error`` events
    of type ``ProtocolMismatch`` or ``BackendStopped`` for pending requests when the process misbehaves.
    """

    def __init__(self, python: str | Path, log_path: str | Path, env: dict[str, str] | None = None) -> None:
        self.python = str(python)
        self.log_path = Path(log_path)
        self.ready_info: dict[str, Any] | None = None
        self.failure: BackendError | None = None
        self._env = env
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ids = itertools.count(1)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stopping = False
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and its reader thread; returns at once (see :meth:`wait_ready`)."""
        if not Path(self.python).is_file():
            raise BackendError(f"The backend Python '{self.python}' does not exist.", SETUP_HINT, kind="NotSetUp")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- starting {self.python} -m likeness serve ({time.strftime('%Y-%m-%d %H:%M:%S')})\n"
                      .encode())
            log.flush()
            try:
                self._process = subprocess.Popen(
                    [self.python, "-m", "likeness", "serve", "--log", str(self.log_path)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    env=self._env, close_fds=True,
                    creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                )
            except OSError as exc:
                raise BackendError(f"The backend could not be started ({exc}).", SETUP_HINT, kind="NotSetUp") from exc
        self._reader = threading.Thread(target=self._read_loop, name="likeness-backend-reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        """True while the process runs and has not broken the protocol."""
        return self._process is not None and self._process.poll() is None and self.failure is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Block until the ``ready`` line was read (for scripts and tests, never the UI); returns it."""
        if not self._ready.wait(timeout):
            self.kill()
            raise BackendError(f"The backend did not start within {timeout:.0f} s; see the log at {self.log_path}.",
                               SETUP_HINT, kind="Timeout")
        if self.failure is not None:
            raise self.failure
        assert self.ready_info is not None
        return self.ready_info

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask the process to exit, then terminate and finally kill it if it does not within ``timeout`` s."""
        process = self._process
        if process is None:
            return
        self._stopping = True
        if process.poll() is None:
            try:
                self._write({"id": "shutdown", "op": "shutdown", "params": {}})
                process.stdin.close()
            except (OSError, ValueError):
                pass
            for stop in (None, process.terminate, process.kill):
                if stop is not None:
                    stop()
                try:
                    process.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._close_pipes()

    def kill(self) -> None:
        """Stop the process at once (protocol violations, timeouts)."""
        self._stopping = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close_pipes()

    # -- requests ---------------------------------------------------------------------------------------------

    def send(self, op: str, params: dict[str, Any] | None = None) -> str:
        """Send a request and return its id; its events arrive through :meth:`poll`."""
        if self.failure is not None:
            raise self.failure
        if not self.alive:
            raise BackendError("The backend is not running.", "Start the job again.", kind="BackendStopped")
        request_id = str(next(self._ids))
        with self._lock:
            self._pending.add(request_id)
        try:
            self._write({"id": request_id, "op": op, "params": params or {}})
        except (OSError, ValueError) as exc:
            with self._lock:
                self._pending.discard(request_id)
            raise BackendError(f"The backend stopped accepting requests ({exc}).",
                               f"See the log at {self.log_path}.", kind="BackendStopped") from exc
        return request_id

    def cancel(self, job_id: str) -> str:
        """Ask the backend to cancel job ``job_id``; the job then ends with an error of type ``Cancelled``."""
        return self.send("cancel", {"job": job_id})

    def poll(self) -> list[dict[str, Any]]:
        """All events received since the last call, oldest first; never blocks."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    # -- internals --------------------------------------------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
        self._process.stdin.flush()

    def _close_pipes(self) -> None:
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except OSError:
                pass

    def _fail(self, error: BackendError) -> None:
        """Record a fatal problem, stop the process, and end every pending request with an error event."""
        if self.failure is None:
            self.failure = error
        self.kill()
        self._ready.set()
        self._fail_pending(error)

    def _fail_pending(self, error: BackendError) -> None:
        with self._lock:
            pending, self._pending = sorted(self._pending, key=int), set()
        for request_id in pending:
            self._events.put({"id": request_id, "type": "error",
                              "error": {"type": error.kind, "message": error.message, "hint": error.hint}})

    def _check_ready(self, line: bytes) -> bool:
        """Validate the first line; on a mismatch record the failure and return False."""
        try:
            message = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            message = None
        if not isinstance(message, dict) or message.get("type") != "ready":
            shown = line[:80].decode("utf-8", "replace").strip()
            self._fail(BackendError(
                f"Protocol mismatch: expected the backend's 'ready' line (protocol {PROTOCOL_VERSION}), "
                f"got '{shown}'.", SETUP_HINT, kind="ProtocolMismatch"))
            return False
        if message.get("protocol") != PROTOCOL_VERSION:
            self._fail(BackendError(
                f"Protocol mismatch: the add-on speaks protocol {PROTOCOL_VERSION}, the backend "
                f"{message.get('backend_version', '?')} speaks protocol {message.get('protocol')!r}.",
                SETUP_HINT, kind="ProtocolMismatch"))
            return False
        self.ready_info = message
        self._ready.set()
        return True

    def _read_loop(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        first = True
        for line in process.stdout:
            if not line.strip():
                continue
            if first:
                first = False
                if not self._check_ready(line):
                    return
                continue
            try:
                event = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                self._log(f"ignored a line that is not JSON on the protocol stream: {line[:200]!r}")
                continue
            if not isinstance(event, dict):
                continue
            if event.get("type") in ("result", "error"):
                with self._lock:
                    self._pending.discard(str(event.get("id")))
            self._events.put(event)
        code = process.wait()
        if self._stopping:
            self._ready.set()
            return
        message = f"the backend stopped unexpectedly (exit code {code}); see the log at {self.log_path}"
        self._fail(BackendError(message[0].upper() + message[1:] + ".",
                                "Start the job again; if it keeps happening, run 'Set up backend' again.",
                                kind="BackendStopped"))

    def _log(self, text: str) -> None:
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"[likeness add-on] {text}\n")
        except OSError:
            print(f"Likeness: {text}", file=sys.stderr)


def backend_env() -> dict[str, str]:
    """Environment for the backend: Blender's own Python variables removed so the venv stays isolated."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONUNBUFFERED"] = "1"
    return env
