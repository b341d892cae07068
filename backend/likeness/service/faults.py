"""Fault injection for tests of the add-on's error handling (never set in normal use).

``LIKENESS_FAULT=<stage>:<mode>`` makes the backend misbehave when a job reaches ``<stage>`` (``start`` is
process start-up): ``crash`` exits at once with status 3, ``hang`` stops responding, ``slow`` pauses 3 s
(time to cancel), ``garbage`` writes a non-JSON line on the protocol stream, ``enospc`` raises the OSError of a
full disk, ``error`` raises an internal error.
"""

from __future__ import annotations

import errno
import os
import time
from typing import TextIO

#: The server's protocol stream, set by ``likeness serve`` so ``garbage`` can corrupt it.
protocol_stream: TextIO | None = None


def check(stage: str) -> None:
    spec = os.environ.get("LIKENESS_FAULT", "")
    if not spec or spec.split(":")[0] != stage:
        return
    mode = spec.split(":", 1)[1] if ":" in spec else "crash"
    if mode == "crash":
        os._exit(3)
    if mode == "hang":
        while True:
            time.sleep(3600)
    if mode == "slow":
        time.sleep(3)
        return
    if mode == "garbage" and protocol_stream is not None:
        protocol_stream.write("this is not json\n")
        protocol_stream.flush()
        return
    if mode == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    raise RuntimeError(f"injected fault at stage {stage!r}")
