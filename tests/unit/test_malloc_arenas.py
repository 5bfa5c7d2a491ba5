"""The malloc arena cap (``malloc_arena_max``): mallopt is called with glibc's M_ARENA_MAX, not at all
for 0, and a C library without mallopt (or refusing the value) is reported, not an error; and the
periodic ``malloc_trim`` (``malloc_trim_interval``)."""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

import pytest
from tests.jobs_support import wait_for

from visionserve.serving.malloc import M_ARENA_MAX, limit_malloc_arenas, trim_every
from visionserve.settings import Settings


class FakeMallopt:
    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls: list[tuple[int, int]] = []
        self.argtypes: Any = None
        self.restype: Any = None

    def __call__(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.answer


class FakeLibc:
    def __init__(self, answer: int = 1) -> None:
        self.mallopt = FakeMallopt(answer)


def test_the_cap_is_set_with_m_arena_max() -> None:
    libc = FakeLibc()
    assert limit_malloc_arenas(2, libc)  # type: ignore[arg-type]
    assert libc.mallopt.calls == [(M_ARENA_MAX, 2)] and M_ARENA_MAX == -8
    assert libc.mallopt.argtypes == [ctypes.c_int, ctypes.c_int]


def test_zero_leaves_glibc_alone() -> None:
    libc = FakeLibc()
    assert not limit_malloc_arenas(0, libc)  # type: ignore[arg-type]
    assert libc.mallopt.calls == []


def test_a_refusal_or_a_library_without_mallopt_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    assert not limit_malloc_arenas(2, FakeLibc(answer=0))  # type: ignore[arg-type]
    assert "refused" in caplog.text
    assert not limit_malloc_arenas(2, object())  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_takes_it() -> None:
    assert limit_malloc_arenas(Settings().malloc_arena_max)
    assert Settings().malloc_arena_max == 2


class FakeTrim:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.argtypes: Any = None
        self.restype: Any = None

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        return 1


def test_trimming_runs_every_interval_until_stopped() -> None:
    libc = FakeLibc()
    libc.malloc_trim = FakeTrim()  # type: ignore[attr-defined]
    stop = threading.Event()
    thread = trim_every(0.01, stop, libc)  # type: ignore[arg-type]
    assert thread is not None
    wait_for(lambda: len(libc.malloc_trim.calls) >= 3, 10)  # type: ignore[attr-defined]
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and set(libc.malloc_trim.calls) == {0}  # type: ignore[attr-defined]


def test_no_trimming_for_zero_or_without_malloc_trim() -> None:
    assert trim_every(0, threading.Event(), FakeLibc()) is None  # type: ignore[arg-type]
    assert trim_every(1.0, threading.Event(), FakeLibc()) is None  # type: ignore[arg-type]
