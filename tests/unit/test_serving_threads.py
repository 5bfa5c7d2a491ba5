"""The thread governor: all cores for a lone forward pass, one thread each under load, and the
thread count changed only while no pass runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from visionserve.serving.threads import ThreadGovernor

WINDOW = 0.5


class Recorder:
    """Records each thread count applied, with how many passes were running at that moment; also
    the governor's clock (seconds that move only when ``now`` is changed)."""

    def __init__(self) -> None:
        self.governor: ThreadGovernor | None = None
        self.calls: list[tuple[int, int]] = []
        self.now = 0.0

    def __call__(self, threads: int) -> None:
        assert self.governor is not None
        self.calls.append((threads, self.governor.running))


def governor(cores: int = 2) -> tuple[ThreadGovernor, Recorder]:
    recorder = Recorder()
    recorder.governor = ThreadGovernor(cores, recorder, window=WINDOW, clock=lambda: recorder.now)
    return recorder.governor, recorder


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def held(gov: ThreadGovernor, uses_opencv: bool = True, backlog: bool = False) -> AsyncIterator[int | None]:
    async with gov.lane(uses_opencv, lambda: backlog) as threads:
        yield threads


class Pass:
    """A forward pass in its own task that holds its lane until released."""

    def __init__(self, gov: ThreadGovernor, uses_opencv: bool = True, backlog: bool = False) -> None:
        self.threads: int | None = None
        self.admitted = False
        self._release = asyncio.Event()
        self.task = asyncio.ensure_future(self._run(gov, uses_opencv, backlog))

    async def _run(self, gov: ThreadGovernor, uses_opencv: bool, backlog: bool) -> None:
        async with held(gov, uses_opencv, backlog) as threads:
            self.threads, self.admitted = threads, True
            await self._release.wait()

    async def finish(self) -> None:
        self._release.set()
        await self.task


def test_a_lone_pass_gets_every_core() -> None:
    async def scenario() -> None:
        gov, recorder = governor(cores=2)
        async with held(gov) as threads:
            assert threads == 2
        assert recorder.calls == [(2, 0)]

    asyncio.run(scenario())


def test_a_pass_with_work_behind_it_starts_parallel_mode() -> None:
    async def scenario() -> None:
        gov, recorder = governor(cores=2)
        first, second = Pass(gov, backlog=True), Pass(gov)
        await settle()
        assert (first.admitted, second.admitted) == (True, True)
        assert (first.threads, second.threads) == (1, 1)
        third = Pass(gov)
        await settle()
        assert not third.admitted  # two passes on two cores: the third waits
        await first.finish()
        await settle()
        assert third.admitted and third.threads == 1
        await second.finish()
        await third.finish()
        assert recorder.calls == [(1, 0)]

    asyncio.run(scenario())


def test_solo_mode_makes_the_next_pass_wait_then_switches_to_parallel() -> None:
    async def scenario() -> None:
        gov, recorder = governor(cores=2)
        solo = Pass(gov)
        await settle()
        assert solo.threads == 2
        waiting = [Pass(gov), Pass(gov)]
        await settle()
        assert not any(p.admitted for p in waiting)
        assert gov.waiting == 2
        await solo.finish()
        await settle()
        assert all(p.admitted and p.threads == 1 for p in waiting)
        for p in waiting:
            await p.finish()
        assert recorder.calls == [(2, 0), (1, 0)]  # changed only while nothing ran

    asyncio.run(scenario())


def test_passes_that_do_not_use_opencv_never_wait_and_freeze_the_mode() -> None:
    async def scenario() -> None:
        gov, recorder = governor(cores=2)
        plugin = Pass(gov, uses_opencv=False)
        await settle()
        assert plugin.admitted
        opencv = Pass(gov, backlog=True)
        await settle()
        assert opencv.admitted and opencv.threads == 2  # the mode cannot change under the plugin
        other_plugin = Pass(gov, uses_opencv=False)
        await settle()
        assert other_plugin.admitted
        for p in (plugin, opencv, other_plugin):
            await p.finish()
        assert recorder.calls == [(2, 0)]

    asyncio.run(scenario())


def test_one_core_runs_opencv_passes_one_at_a_time() -> None:
    async def scenario() -> None:
        gov, recorder = governor(cores=1)
        first, second = Pass(gov), Pass(gov, backlog=True)
        await settle()
        assert first.admitted and not second.admitted
        await first.finish()
        await settle()
        assert second.admitted and second.threads == 1
        await second.finish()
        assert recorder.calls == [(1, 0)]

    asyncio.run(scenario())


def test_a_cancelled_waiter_does_not_block_others() -> None:
    async def scenario() -> None:
        gov, recorder = governor(cores=2)
        solo = Pass(gov)
        await settle()
        waiter = Pass(gov)
        await settle()
        waiter.task.cancel()
        await settle()
        assert gov.waiting == 0
        await solo.finish()
        recorder.now += WINDOW
        async with held(gov) as threads:
            assert threads == 2

    asyncio.run(scenario())


def test_passes_that_overlapped_recently_keep_parallel_mode_for_a_while() -> None:
    """Two clients taking turns: after their passes overlapped, a pass that finds none running
    still starts in parallel mode, so that the other client's next pass need not wait."""

    async def scenario() -> None:
        gov, recorder = governor(cores=2)
        first = Pass(gov, backlog=True)
        await settle()
        second = Pass(gov)
        await settle()
        await first.finish()
        await second.finish()
        recorder.now += WINDOW / 2
        async with held(gov) as threads:
            assert threads == 1
        recorder.now += WINDOW
        async with held(gov) as threads:
            assert threads == 2
        assert recorder.calls == [(1, 0), (2, 0)]

    asyncio.run(scenario())


def test_cores_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cores"):
        ThreadGovernor(0, lambda threads: None)
