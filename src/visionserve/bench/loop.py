"""A closed-loop load runner: ``concurrency`` threads each call their own worker back to back.

Every thread owns one worker (a keep-alive connection, or a model instance borrowed from a pool),
so workers need no locks. A step runs ``warmup`` seconds whose calls are not counted, then a
``duration`` window: a call is counted when it *ends* inside the window, no call starts after it,
and the window closes early when ``max_calls`` calls were started (for scripts that bound the
count). The process's CPU time over the window (``time.process_time``: every thread of this
process) says how much of the machine the load generator itself took.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from visionserve.errors import VisionServeError


class Worker(Protocol):
    """One call per ``__call__`` (a request, or a batch in-process); returns None when it succeeded,
    else a short kind of error (``"HTTP 503"``, ``"wrong answer"``, ...) that the table counts."""

    def __call__(self) -> str | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StepResult:
    """What one step measured. ``latencies`` are seconds per call ended in the window (errors
    included); ``cpu_seconds`` is this process's CPU time over the window; ``images_per_call`` is
    the batch size (1 for a server request)."""

    concurrency: int
    images_per_call: int
    seconds: float
    calls: int
    errors: Counter[str]
    latencies: list[float]
    cpu_seconds: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def images_per_s(self) -> float:
        """Images of successful calls per second of the window."""
        good = self.calls - self.error_count
        return good * self.images_per_call / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_cores(self) -> float:
        """CPU seconds per second of the window: 1.0 is one core kept busy."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile of the latencies in milliseconds (NaN when none)."""
        if not self.latencies:
            return float("nan")
        return float(np.percentile(np.asarray(self.latencies) * 1000.0, q))


@dataclass
class _Window:
    """Shared between the threads (guarded by ``lock``): counts of the calls that ended in the window."""

    warm_end: float
    end: float
    max_calls: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def may_start(self) -> bool:
        with self.lock:
            if time.perf_counter() >= self.end or (self.max_calls is not None and self.started >= self.max_calls):
                return False
            self.started += 1
            return True

    def record(self, began: float, ended: float, error: str | None) -> None:
        if not self.warm_end <= ended <= self.end:
            return
        with self.lock:
            self.latencies.append(ended - began)
            if error is not None:
                self.errors[error] += 1


def _call(worker: Worker) -> str | None:
    """One call; an error the worker did not turn into a kind is named by its class."""
    try:
        return worker()
    except (OSError, ValueError, VisionServeError) as exc:
        return type(exc).__name__


def _drive(worker: Worker, window: _Window) -> None:
    try:
        while window.may_start():
            began = time.perf_counter()
            error = _call(worker)
            window.record(began, time.perf_counter(), error)
    finally:
        worker.close()


def run_step(
    make_worker: Callable[[int], Worker],
    concurrency: int,
    duration: float,
    warmup: float = 0.0,
    *,
    images_per_call: int = 1,
    max_calls: int | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> StepResult:
    """Run ``concurrency`` threads, thread ``i`` calling ``make_worker(i)`` back to back for
    ``warmup + duration`` seconds; ``on_tick(seconds_elapsed)`` is called about 4 times a second
    from this thread (a progress display). Workers are built before the clock starts."""
    if concurrency < 1 or duration <= 0 or warmup < 0:
        raise ValueError("concurrency must be at least 1, duration positive and warm-up not negative")
    workers = [make_worker(i) for i in range(concurrency)]
    start = time.perf_counter()
    window = _Window(start + warmup, start + warmup + duration, max_calls)
    threads = [threading.Thread(target=_drive, args=(w, window), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    cpu_start = _cpu_at(window.warm_end, start, on_tick, threads)
    _wait(threads, window.end, start, on_tick)
    cpu_seconds = time.process_time() - cpu_start
    closed = min(time.perf_counter(), window.end)
    for thread in threads:
        thread.join()
    seconds = max(0.0, closed - window.warm_end)
    counted = len(window.latencies)
    return StepResult(concurrency, images_per_call, seconds, counted, window.errors, window.latencies, cpu_seconds)


def _cpu_at(
    moment: float, start: float, on_tick: Callable[[float], None] | None, threads: list[threading.Thread]
) -> float:
    """Wait until ``moment`` (or until every thread ended) and read the process's CPU time then."""
    _wait(threads, moment, start, on_tick)
    return time.process_time()


def _wait(threads: list[threading.Thread], until: float, start: float, on_tick: Callable[[float], None] | None) -> None:
    while True:
        now = time.perf_counter()
        if now >= until or not any(t.is_alive() for t in threads):
            return
        if on_tick is not None:
            on_tick(now - start)
        time.sleep(min(0.25, until - now))
