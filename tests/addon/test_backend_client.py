"""BackendClient against a fake backend script: an isolated unit test of the protocol handling.

The real backend is exercised end to end in test_reconstruct.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the fake interpreter is a shell script")

FAKE = Path(__file__).with_name("fake_backend.py")


@pytest.fixture
def make_client(addon, tmp_path):
    """Build a client whose 'python' runs fake_backend.py in the given mode; stops them all afterwards."""
    clients = []

    def make(mode: str):
        python = tmp_path / "python"
        python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        python.chmod(0o755)
        env = {**os.environ, "FAKE_BACKEND_MODE": mode}
        client = addon.backend_client.BackendClient(python, tmp_path / "logs" / "backend.log", env=env)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.kill()


def wait_for(client, request_id: str, timeout: float = 20.0) -> list[dict]:
    """Poll until the request ends; returns all its events."""
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += [e for e in client.poll() if e.get("id") == request_id]
        if events and events[-1]["type"] in ("result", "error"):
            return events
        time.sleep(0.01)
    raise AssertionError(f"no end for request {request_id}; got {events}")


def test_ready_then_jobs_with_progress(make_client):
    client = make_client("ok")
    client.start()
    assert client.poll() == []  # returns at once, nothing there yet
    assert client.wait_ready(20)["backend_version"] == "9.9.9"
    hello = wait_for(client, client.send("hello"))
    assert hello[-1]["result"]["models"] == {"ict": "installed"}
    events = wait_for(client, client.send("reconstruct", {"photos": ["a.jpg"], "output": "/tmp/x"}))
    assert [e["type"] for e in events] == ["progress", "progress", "result"]  # the garbage line is skipped
    assert [e["fraction"] for e in events[:2]] == [0.1, 0.5]
    assert events[-1]["result"]["bundle"] == "/tmp/x"
    assert "not json in the middle" in client.log_path.read_text()
    log = client.log_path.read_text()
    assert "fake backend ok started with ['-m', 'likeness', 'serve', '--log'" in log
    pid = client.ready_info["pid"]
    client.shutdown(timeout=5)
    assert not client.alive
    assert client.join(5) and client._process.returncode == 0  # it exited by itself, cleanly
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("mode, message", [
    ("protocol2", r"add-on speaks protocol 1, the backend 9.9.9 speaks protocol 2"),
    ("garbage", r"expected the backend's 'ready' line .* got 'Hello from a native library'"),
])
def test_protocol_mismatch_stops_the_backend(addon, make_client, mode, message):
    client = make_client(mode)
    client.start()
    request_id = client.send("hello")  # sent before the ready line was read: must end with an error
    with pytest.raises(addon.errors.BackendError, match=message) as info:
        client.wait_ready(20)
    assert info.value.kind == "ProtocolMismatch" and "Set up backend" in info.value.hint
    events = wait_for(client, request_id)
    assert events[-1]["error"]["type"] == "ProtocolMismatch"
    assert client._process.wait(5) is not None and not client.alive
    with pytest.raises(addon.errors.BackendError, match="Protocol mismatch"):
        client.send("hello")


def test_crash_mid_job_becomes_an_error_event(make_client):
    client = make_client("crash")
    client.start()
    client.wait_ready(20)
    events = wait_for(client, client.send("reconstruct", {"photos": ["a.jpg"], "output": "/tmp/x"}))
    assert events[0]["type"] == "progress"
    error = events[-1]["error"]
    assert error["type"] == "BackendStopped"
    assert "stopped unexpectedly (exit code 3)" in error["message"]
    assert str(client.log_path) in error["message"]
    assert not client.alive


def test_shutdown_returns_at_once_and_kills_a_backend_that_does_not_stop(make_client):
    client = make_client("stubborn")
    client.start()
    client.wait_ready(20)
    started = time.monotonic()
    client.shutdown(timeout=0.5)
    assert time.monotonic() - started < 0.3, "shutdown waited on the calling (UI) thread"
    assert client._process.poll() is None  # still running: a background thread waits, terminates, kills
    assert client.join(10) and client._process.returncode < 0  # killed by a signal
    assert time.monotonic() - started < 5


def test_blocking_shutdown_waits_briefly_then_kills(make_client):
    """What Blender's quit does (daemon threads die with the interpreter): a bounded wait, then kill."""
    client = make_client("stubborn")
    client.start()
    client.wait_ready(20)
    started = time.monotonic()
    client.shutdown(timeout=0.5, block=True)
    assert client._process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 3


def test_python_without_the_backend_is_named_with_the_log_line(addon, tmp_path):
    """A real interpreter that cannot import likeness (-S: no site-packages) ends before its ready line."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    client = addon.backend_client.BackendClient(python, tmp_path / "backend.log", env=dict(os.environ))
    client.start()
    with pytest.raises(addon.errors.BackendError) as info:
        client.wait_ready(20)
    message = info.value.message
    assert f"Could not start the backend with {python}: is Likeness's backend installed in it?" in message
    assert "No module named likeness" in message  # the last line of the log, quoted
    assert "Set up backend" in info.value.hint and str(client.log_path) in info.value.hint


def test_missing_interpreter_is_reported(addon, tmp_path):
    client = addon.backend_client.BackendClient(tmp_path / "no-python", tmp_path / "log.txt")
    with pytest.raises(addon.errors.BackendError, match="does not exist") as info:
        client.start()
    assert info.value.kind == "NotSetUp"
