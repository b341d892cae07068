"""Keep freed memory for the next job (glibc only).

A 2048² job allocates and frees about half a gigabyte of large NumPy/OpenCV buffers. glibc hands blocks above
its mmap threshold back to the kernel on ``free``, so the next job page-faults all of them in again: measured
0.2–0.27 s of system time per 2048² job on 2 cores (a quarter of its wall time). Raising the mmap threshold
to its maximum (32 MiB) and the trim threshold keeps those blocks in the heap for reuse (0.12–0.16 s left). The
cost: a warm process keeps up to :data:`TRIM_BYTES` of freed memory.

The job's large buffers are made and freed in worker threads too (the bake's tasks, the encoders), and glibc gives
each thread an arena of its own whose freed blocks no other thread reuses and whose heaps go back to the kernel:
measured 0.3–1.5 s of system time per 2048² job with the bake's parallel tasks. One arena for every thread
(``M_ARENA_MAX`` = 1; its lock is taken once per large buffer, not per element) brings that to 0.01–0.25 s.
Both settings must come before NumPy's or any worker thread first allocates, so the package makes them when it is
imported (``likeness/__init__.py``). ``LIKENESS_MALLOC=default`` leaves glibc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
MMAP_BYTES = 32 * 1024 * 1024  # glibc's largest allowed mmap threshold on 64-bit systems
TRIM_BYTES = 2**31 - 1
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process; returns whether it was tuned (False: not glibc, or turned off)."""
    global _done
    if _done is None:
        _done = _tune()
    return _done


def _tune() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("LIKENESS_MALLOC", "") == "default":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)
                and mallopt(M_TOP_PAD, 256 * 1024 * 1024) and mallopt(M_ARENA_MAX, 1))
