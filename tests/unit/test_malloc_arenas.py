"""The malloc arena cap (``malloc_arena_max``): mallopt is called with glibc's M_ARENA_MAX, not at all
for 0, and a C library without mallopt (or refusing the value) is reported, not an error."""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import pytest

from visionserve.serving.malloc import M_ARENA_MAX, limit_malloc_arenas
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
