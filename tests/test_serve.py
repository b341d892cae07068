"""`likeness serve` as the add-on uses it: a real subprocess speaking JSON lines."""

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO, dev_photo


class Backend:
    def __init__(self, tmp_path, env=None):
        self.log = tmp_path / "backend.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "likeness", "serve", "--log", str(self.log)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, obj):
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def next(self, timeout=120):
        line = self.lines.get(timeout=timeout)
        return None if line is None else json.loads(line)

    def until_done(self, rid):
        events = []
        while True:
            event = self.next()
            assert event is not None, f"backend died; log:\n{self.log.read_text()}"
            if event.get("id") == rid:
                events.append(event)
                if event["type"] in ("result", "error"):
                    return events


def network_sockets(pid: int) -> list[str]:
    """The process's open TCP/UDP/raw sockets (IPv4 and IPv6) as ``proto:local_address``, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        table = Path(f"/proc/{pid}/net/{proto}")
        for row in table.read_text().splitlines()[1:] if table.is_file() else []:
            fields = row.split()
            if fields[9] in inodes:
                found.append(f"{proto}:{fields[1]}")
    return found


def test_only_the_model_installer_imports_network_modules():
    """The backend's source: no server, socket or HTTP code outside `models install` (which downloads)."""
    network = re.compile(r"^\s*(?:import|from)\s+(socket|socketserver|ssl|asyncio|urllib|http|requests|xmlrpc)\b",
                         re.MULTILINE)
    users = {path.name for path in (REPO / "backend" / "likeness").rglob("*.py") if network.search(path.read_text())}
    assert users == {"models.py"}


@pytest.mark.skipif(not Path("/proc/self/net/tcp").is_file(), reason="reads sockets from /proc")
def test_network_socket_check_sees_a_listening_socket():
    """The check used on the backend finds a real listening socket (so an empty answer means something)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert any(s.startswith("tcp:") for s in network_sockets(os.getpid()))


@pytest.fixture
def request_params(ict_path, tmp_path):
    return {"photos": [str(dev_photo("dev_000_london_002_03.jpg"))], "output": str(tmp_path / "bundle"),
            "texture_size": 256, "model": str(ict_path)}


def test_protocol_session(tmp_path, request_params):
    backend = Backend(tmp_path)
    ready = backend.next()
    assert ready["type"] == "ready" and ready["protocol"] == 1
    backend.send({"id": "h", "op": "hello"})
    hello = backend.next()
    assert hello["id"] == "h" and "reconstruct" in hello["result"]["jobs"] and "ict" in hello["result"]["models"]
    backend.send("this is not json")
    assert backend.next()["error"]["type"] == "BadRequest"
    backend.send({"id": "1", "op": "reconstruct", "params": request_params})
    events = backend.until_done("1")
    assert events[-1]["type"] == "result", events[-1]
    assert {e["stage"] for e in events if e["type"] == "progress"} >= {"landmarks", "fit", "texture", "write"}
    assert os.path.isfile(os.path.join(events[-1]["result"]["bundle"], "manifest.json"))
    # the same warm process takes a second job
    backend.send({"id": "2", "op": "reconstruct", "params": dict(request_params, output=str(tmp_path / "b2"))})
    assert backend.until_done("2")[-1]["type"] == "result"
    backend.send({"id": "3", "op": "reconstruct",
                  "params": dict(request_params, photos=["/no/such.jpg"], output=str(tmp_path / "b3"))})
    error = backend.until_done("3")[-1]
    assert error["type"] == "error" and error["error"]["type"] == "BadInput" and error["error"]["hint"]
    if Path("/proc/self/net/tcp").is_file():
        assert not network_sockets(backend.proc.pid), "the backend opened a network socket"
    backend.send({"id": "q", "op": "shutdown"})
    assert backend.next()["result"] == {"shutdown": True}
    assert backend.proc.wait(timeout=30) == 0


def test_jobs_sent_together_run_one_after_the_other(tmp_path, request_params):
    """Two jobs at once: the second waits for the first; `hello` is answered at once meanwhile."""
    backend = Backend(tmp_path)
    backend.next()
    backend.send({"id": "1", "op": "reconstruct", "params": request_params})
    backend.send({"id": "2", "op": "reconstruct", "params": dict(request_params, output=str(tmp_path / "b2"))})
    backend.send({"id": "h", "op": "hello"})
    events = []
    while sum(e["type"] in ("result", "error") for e in events) < 3:
        events.append(backend.next())
        assert events[-1] is not None, f"backend died; log:\n{backend.log.read_text()}"
    order = [(e["id"], e["type"]) for e in events]
    assert order.index(("h", "result")) < order.index(("1", "result"))
    assert order.index(("1", "result")) < min(i for i, (rid, _) in enumerate(order) if rid == "2")
    assert [e["result"]["bundle"] for e in events if e["type"] == "result" and e["id"] != "h"] == [
        str((tmp_path / "bundle").resolve()), str((tmp_path / "b2").resolve())]
    backend.send({"id": "q", "op": "shutdown"})
    assert backend.proc.wait(timeout=30) == 0


@pytest.mark.parametrize("stage", ["load", "landmarks", "fit", "texture", "write"])
def test_cancel_stops_a_running_job_and_writes_nothing(tmp_path, request_params, stage):
    backend = Backend(tmp_path, env={"LIKENESS_FAULT": f"{stage}:slow"})  # the stage pauses 3 s
    backend.next()
    backend.send({"id": "1", "op": "reconstruct", "params": request_params})
    while (event := backend.next())["type"] != "progress" or event["stage"] != stage:
        assert event["type"] == "progress", event
    backend.send({"id": "c", "op": "cancel", "params": {"job": "1"}})
    answers = {}
    while len(answers) < 2:
        event = backend.next()
        if event["type"] in ("result", "error"):
            answers[event["id"]] = event
    assert answers["c"]["result"]["cancelled"] is True
    assert answers["1"]["type"] == "error" and answers["1"]["error"]["type"] == "Cancelled", answers["1"]
    assert not (tmp_path / "bundle").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]
    backend.send({"id": "q", "op": "shutdown"})
    assert backend.proc.wait(timeout=30) == 0


def test_malformed_requests_are_answered_and_the_backend_survives(tmp_path):
    backend = Backend(tmp_path)
    backend.next()
    for bad in ('{"id": "a", "op": "cancel", "params": "oops"}', '[1, 2]', '{"id": "b", "op": "fly"}',
                '{"id": "c", "op": "reconstruct", "params": {"photos": "x.jpg"}}'):
        backend.send(bad)
        answer = backend.next()
        assert answer["type"] == "error" and answer["error"]["type"] == "BadRequest", answer
    backend.send({"id": "h", "op": "hello"})
    assert backend.next()["result"]["protocol"] == 1


def test_injected_crash_ends_the_process_with_its_code(tmp_path, request_params):
    backend = Backend(tmp_path, env={"LIKENESS_FAULT": "fit:crash"})
    backend.next()
    backend.send({"id": "1", "op": "reconstruct", "params": request_params})
    while backend.next() is not None:
        pass
    assert backend.proc.wait(timeout=30) == 3


def test_a_start_up_failure_ends_the_stream_without_junk(tmp_path):
    backend = Backend(tmp_path, env={"LIKENESS_FAULT": "start:error"})
    # the injected start-up error raises before the ready line: the client sees the stream end, not junk
    assert backend.next() is None
    assert backend.proc.wait(timeout=30) != 0
