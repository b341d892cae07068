"""Client of the backend process ``<python> -m likeness serve`` (docs/protocol.md, protocol version 1).

No bpy here. The process talks JSON lines on stdin/stdout; its stderr goes to a log file. A daemon thread
reads stdout and pushes decoded events into a queue; :meth:`BackendClient.poll` drains the queue without
blocking, so Blender's UI thread never waits on the backend. The client checks the ``ready`` line (protocol
version), and turns a dead process into ``error`` events for the requests still waiting for an answer.
Stopping never blocks either: :meth:`BackendClient.shutdown` asks the process to exit and leaves the waiting
(then terminate, then kill) to a daemon thread; only Blender's quit waits, briefly, before killing.
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
#: Seconds :meth:`BackendClient.kill` waits for the killed process to exit (its reader thread reaps it later).
KILL_WAIT = 1.0


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
            log.write(f"\n{_START_MARK}{self.python} -m likeness serve ({time.strftime('%Y-%m-%d %H:%M:%S')})\n"
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
        """True while the process runs, has not broken the protocol and was not asked to stop."""
        return (self._process is not None and self._process.poll() is None and self.failure is None
                and not self._stopping)

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

    def shutdown(self, timeout: float = 5.0, block: bool = False) -> None:
        """Ask the process to exit (``shutdown`` request, end of input) without waiting for it on this thread.

        A daemon thread waits ``timeout`` s, then terminates the process, waits again, and finally kills it.
        ``block=True`` (Blender quitting, when daemon threads die with the interpreter) waits here instead, at
        most ``timeout`` s, and then kills the process.
        """
        process = self._process
        if process is None:
            return
        self._stopping = True
        if process.poll() is None:
            try:
                self._write({"id": "shutdown", "op": "shutdown", "params": {}})
            except (OSError, ValueError):
                pass
        self._close_pipes()
        if block:
            _stop_process(process, timeout, (process.kill,))
        elif process.poll() is None:
            threading.Thread(target=_stop_process, args=(process, timeout, (process.terminate, process.kill)),
                             name="likeness-backend-stop", daemon=True).start()

    def kill(self) -> None:
        """Stop the process at once (protocol violations, timeouts, jobs that ignore Cancel)."""
        self._stopping = True
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            _stop_process(process, KILL_WAIT, ())
        self._close_pipes()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to exit (off the UI thread); True if it has."""
        if self._process is None:
            return True
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

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
        if first:  # ended before its ready line: usually a Python without the backend
            last = self._last_log_line()
            self._fail(BackendError(
                f"Could not start the backend with {self.python}: is Likeness's backend installed in it?"
                + (f" The log says: '{last}'" if last else f" (exit code {code})"),
                f"Press 'Set up backend' in the Likeness add-on preferences, or choose a Python with the "
                f"backend installed. See the log at {self.log_path}.", kind="NotSetUp"))
            return
        message = f"the backend stopped unexpectedly (exit code {code}); see the log at {self.log_path}"
        self._fail(BackendError(message[0].upper() + message[1:] + ".",
                                "Start the job again; if it keeps happening, run 'Set up backend' again.",
                                kind="BackendStopped"))

    def _last_log_line(self) -> str:
        """The last non-empty line the process wrote to the log since this client started it ('' if none)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.split(_START_MARK)[-1].splitlines()[1:] if line.strip()]
        return lines[-1][:300] if lines else ""

    def _log(self, text: str) -> None:
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"[likeness add-on] {text}\n")
        except OSError:
            print(f"Likeness: {text}", file=sys.stderr)


_START_MARK = "--- starting "


def _stop_process(process: subprocess.Popen, timeout: float, escalation: tuple) -> None:
    """Wait ``timeout`` s for ``process`` to exit, then call each of ``escalation`` (terminate, kill) in turn."""
    for stop in (None, *escalation):
        if stop is not None:
            try:
                stop()
            except OSError:  # exited in the meantime
                pass
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def backend_env() -> dict[str, str]:
    """Environment for the backend: Blender's own Python variables removed so the venv stays isolated."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONUNBUFFERED"] = "1"
    return env
