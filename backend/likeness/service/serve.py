"""``likeness serve``: the long-lived backend process, JSON lines over stdin/stdout (docs/protocol.md)."""

from __future__ import annotations

import json
import logging
import os
import platform
import queue
import sys
import threading
import traceback
from typing import TextIO

from .. import PROTOCOL_VERSION, __version__
from . import faults
from ..errors import BadRequest, Cancelled, LikenessError
from .jobs import JOBS
from .pipeline import Engine

log = logging.getLogger("likeness.serve")
_IMMEDIATE = ("hello", "models", "cancel", "shutdown")


class Server:
    """Reads requests from ``inp`` and writes events to ``out``; jobs run one at a time on a worker thread."""

    def __init__(self, out: TextIO, engine: Engine | None = None) -> None:
        self.out = out
        self.engine = engine or Engine()
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._worker = threading.Thread(target=self._work, name="likeness-jobs", daemon=True)

    def emit(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def run(self, inp: TextIO) -> int:
        self.emit({"type": "ready", "protocol": PROTOCOL_VERSION, "backend_version": __version__,
                   "python": platform.python_version(), "pid": os.getpid()})
        self._worker.start()
        for line in inp:
            if not line.strip():
                continue
            try:
                if self._handle(line) == "shutdown":
                    break
            except Exception as exc:  # a bad request must never take the backend down
                log.error("request failed:\n%s", traceback.format_exc())
                self.emit({"id": None, "type": "error", "error": {
                    "type": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                    "hint": "See the backend log for details."}})
        self._stop()
        return 0

    def _handle(self, line: str) -> str | None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            self.emit({"id": None, "type": "error", "error": BadRequest(
                "A request line is not a JSON object.", "Send one JSON object per line.").to_dict()})
            return None
        rid, op, params = request.get("id"), request.get("op"), request.get("params") or {}
        if not isinstance(params, dict):
            self.emit({"id": rid, "type": "error", "error": BadRequest(
                "`params` must be a JSON object.", "See docs/protocol.md.").to_dict()})
            return None
        if op == "shutdown":
            self.emit({"id": rid, "type": "result", "result": {"shutdown": True}})
            return "shutdown"
        if op in ("hello", "models"):
            self.emit({"id": rid, "type": "result", "result": self._hello()})
        elif op == "cancel":
            event = self._cancel.get(str(params.get("job")))
            if event is not None:
                event.set()
            self.emit({"id": rid, "type": "result", "result": {"cancelled": event is not None}})
        elif op in JOBS:
            self._cancel[str(rid)] = threading.Event()
            self._queue.put((rid, op, params))
        else:
            self.emit({"id": rid, "type": "error", "error": BadRequest(
                f"Unknown op {op!r}.", f"Known ops: {', '.join(sorted(set(JOBS) | set(_IMMEDIATE)))}.").to_dict()})
        return None

    def _hello(self) -> dict:
        from .models import list_models

        return {"protocol": PROTOCOL_VERSION, "backend_version": __version__,
                "python": platform.python_version(), "jobs": sorted(JOBS),
                "models": {m["name"]: m for m in list_models()}}

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            rid, op, params = item
            cancelled = self._cancel[str(rid)]
            def report(stage: str, fraction: float, message: str, rid=rid) -> None:
                self.emit({"id": rid, "type": "progress", "stage": stage, "fraction": round(fraction, 4),
                           "message": message})
            try:
                if cancelled.is_set():
                    raise Cancelled()
                result = JOBS[op](self.engine, params, report, cancelled.is_set)
                self.emit({"id": rid, "type": "result", "result": result})
            except LikenessError as exc:
                self.emit({"id": rid, "type": "error", "error": exc.to_dict()})
            except Exception as exc:  # an internal error must not kill the server
                log.error("job %s failed:\n%s", rid, traceback.format_exc())
                self.emit({"id": rid, "type": "error", "error": {
                    "type": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                    "hint": "See the backend log for details."}})
            finally:
                self._cancel.pop(str(rid), None)

    def _stop(self) -> None:
        for event in list(self._cancel.values()):
            event.set()
        self._queue.put(None)
        self._worker.join(timeout=10)


def protocol_stream(log_path: str | None) -> TextIO:
    """Move the protocol to a private descriptor; fd 1 and 2 then go to the log (or stderr).

    Native libraries (TensorFlow Lite, absl) write to fd 1 and 2 directly; they must never reach the client.
    """
    private = os.dup(1)
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "w", encoding="utf-8", buffering=1)


def main(log_path: str | None = None) -> int:
    out = protocol_stream(log_path)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    faults.protocol_stream = out
    faults.check("start")
    log.info("likeness %s serving on stdio (pid %d)", __version__, os.getpid())
    return Server(out).run(sys.stdin)
