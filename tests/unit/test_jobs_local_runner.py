"""The embedded runner's threads: priority, retries on storage errors, stop."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pytest
from tests.jobs_support import wait_for

from visionserve.errors import ConfigError, StorageError
from visionserve.jobs.local_runner import LocalRunner


class FakeProcessor:
    """Records (job, index, nice value of the thread) and fails with StorageError ``failures`` times."""

    def __init__(self, seen: list[tuple[str, int, int]], failures: int = 0) -> None:
        self.seen = seen
        self.failures = failures
        self.closed = False

    def process(self, job_id: str, index: int) -> Any:
        self.seen.append((job_id, index, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        if self.failures:
            self.failures -= 1
            raise StorageError("database is restarting")
        return None

    def close(self) -> None:
        self.closed = True


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")
def test_job_threads_are_nicer_than_the_server() -> None:
    seen: list[tuple[str, int, int]] = []
    processors: list[FakeProcessor] = []

    def make(n: int) -> Any:
        processors.append(FakeProcessor(seen))
        return processors[-1]

    runner = LocalRunner(make, workers=2, nice=5)
    runner.start()
    runner.submit("a" * 32, [0, 1, 2])
    wait_for(lambda: len(seen) == 3)
    runner.stop()
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert {nice for _, _, nice in seen} == {min(19, base + 5)}
    assert sorted(index for _, index, _ in seen) == [0, 1, 2]
    assert len(processors) == 2 and all(p.closed for p in processors)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_storage_errors_put_the_item_back() -> None:
    seen: list[tuple[str, int, int]] = []
    runner = LocalRunner(lambda n: FakeProcessor(seen, failures=2), workers=1, retry_s=0.01)  # type: ignore[arg-type,return-value]
    runner.start()
    runner.submit("b" * 32, [7])
    wait_for(lambda: len(seen) == 3)
    runner.stop()
    assert [index for _, index, _ in seen] == [7, 7, 7]
    assert runner.queue_depth() == 0


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ConfigError, match="at least 1 worker"):
        LocalRunner(lambda n: FakeProcessor([]), workers=0)  # type: ignore[arg-type,return-value]
