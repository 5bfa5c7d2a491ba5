"""glibc's malloc arenas: a cap for long-running processes with many threads.

glibc gives threads that contend for the heap arenas of their own, up to eight per core, and an
arena keeps the pages of freed memory it cannot trim from its top. The server's threads (uvicorn's
pool of 40, the inference instances, the jobs pool) each decode and resize images of a few
megabytes, so every arena they land in ends up holding some of them: the resident size creeps up
for many minutes under varied load although nothing leaks (the soak in ``docs/reliability.md``:
+12% in ten minutes with glibc's default; with two arenas it ended where it started, and about 10%
lower than the default in the same run). ``mallopt(M_ARENA_MAX, n)`` bounds that; it is what
the environment variable ``MALLOC_ARENA_MAX`` does, set from the settings at start instead (the
process never writes its own environment). Arenas already created stay; call it before starting
threads. Other C libraries (musl, macOS) have no such knob: the call then does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)

#: ``M_ARENA_MAX`` of glibc's ``<malloc.h>``.
M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_malloc_arenas(count: int, libc: ctypes.CDLL | None = None) -> bool:
    """Cap glibc's malloc arenas at ``count`` (0 leaves glibc's default). True when the cap was set;
    False with 0, or when the C library has no ``mallopt`` or refuses the value."""
    if count <= 0:
        return False
    lib = libc if libc is not None else _libc()
    mallopt = None if lib is None else getattr(lib, "mallopt", None)
    if mallopt is None:
        log.info("this C library has no mallopt: the malloc arena cap (%d) does not apply", count)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, count) != 1:
        log.warning("mallopt(M_ARENA_MAX, %d) was refused", count)
        return False
    log.debug("malloc arenas capped at %d", count)
    return True


def trim_every(interval_s: float, stop: threading.Event, libc: ctypes.CDLL | None = None) -> threading.Thread | None:
    """Start a daemon thread that calls glibc's ``malloc_trim(0)`` every ``interval_s`` seconds until
    ``stop`` is set: the free pages of every arena go back to the system, not only those at an
    arena's top. None (nothing started) for 0 or a C library without ``malloc_trim``."""
    lib = libc if libc is not None else _libc()
    trim = None if lib is None else getattr(lib, "malloc_trim", None)
    if interval_s <= 0 or trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> None:
        while not stop.wait(interval_s):
            trim(0)

    thread = threading.Thread(target=run, name="visionserve-malloc-trim", daemon=True)
    thread.start()
    return thread
