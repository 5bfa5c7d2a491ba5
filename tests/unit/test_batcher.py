"""The dynamic batcher, driven by a fake clock: no HTTP, no sleeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from visionserve.batching import Batcher, BatchPolicy, Priority
from visionserve.errors import (
    ConfigError,
    InferenceError,
    InvalidParameterError,
    ModelNotReadyError,
    OverloadedError,
)
from visionserve.models.spec import BatchingSpec

T = TypeVar("T")


class FakeClock:
    """Time that moves only when the test calls :meth:`advance`."""

    def __init__(self) -> None:
        self.time = 100.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.time + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.time += seconds
        for deadline, future in list(self._sleepers):
            if deadline <= self.time and not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(20):
        await asyncio.sleep(0)


class Recorder:
    """A batch function that records each batch and answers ``item * 10``; it can be held back
    (``gate``) to keep a slot busy, or told to fail or to return one result too few."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.max_running = 0
        self.error: Exception | None = None
        self.short = False

    async def __call__(self, items: list[int]) -> Sequence[int]:
        self.batches.append(list(items))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.error is not None:
                raise self.error
            results = [item * 10 for item in items]
            return results[:-1] if self.short else results
        finally:
            self.running -= 1


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def make(
    recorder: Recorder, clock: FakeClock, size: int = 4, delay: float = 0.010, queue: int = 16, capacity: int = 1
) -> Batcher[int, int]:
    batcher: Batcher[int, int] = Batcher(BatchPolicy(size, delay, queue), recorder, clock=clock, capacity=capacity)
    batcher.start()
    return batcher


async def occupy(batcher: Batcher[int, int], recorder: Recorder, item: int = -1) -> asyncio.Future[int]:
    """Send one item that holds the only slot until ``recorder.gate`` is set."""
    recorder.gate = asyncio.Event()
    future = batcher.submit(item)
    await settle()
    return future


async def release(recorder: Recorder) -> None:
    assert recorder.gate is not None
    recorder.gate.set()
    recorder.gate = None
    await settle()


def test_a_lone_item_leaves_at_once_without_waiting_for_company() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, delay=5.0)
        future = batcher.submit(7)
        await settle()
        assert recorder.batches == [[7]]
        assert await future == 70
        await batcher.close()

    run(scenario)


def test_a_full_batch_leaves_at_once() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=3, delay=5.0)
        blocker = await occupy(batcher, recorder)
        futures = [batcher.submit(i) for i in (1, 2, 3)]
        await release(recorder)
        assert recorder.batches == [[-1], [1, 2, 3]]
        assert [await f for f in futures] == [10, 20, 30]
        assert await blocker == -10
        await batcher.close()

    run(scenario)


def test_a_partial_batch_leaves_after_the_queue_delay_of_its_oldest_item() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=4, delay=0.010)
        await occupy(batcher, recorder)
        first = batcher.submit(1)
        await clock.advance(0.004)
        second = batcher.submit(2)
        await release(recorder)
        assert recorder.batches == [[-1]]  # a slot is free, but the oldest item waits for company
        await clock.advance(0.005)
        assert recorder.batches == [[-1]]
        await clock.advance(0.002)  # 11 ms after the first item was queued
        assert recorder.batches == [[-1], [1, 2]]
        assert (await first, await second) == (10, 20)
        await batcher.close()

    run(scenario)


def test_time_spent_waiting_for_a_slot_counts_towards_the_delay() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=4, delay=0.010)
        await occupy(batcher, recorder)
        future = batcher.submit(1)
        await clock.advance(0.050)
        await release(recorder)
        assert recorder.batches == [[-1], [1]]
        assert await future == 10
        await batcher.close()

    run(scenario)


def test_items_submitted_together_share_a_batch_and_get_their_own_results() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=3, delay=5.0)
        futures = batcher.submit_many([4, 5, 6, 7, 8])
        await settle()
        assert recorder.batches[0] == [4, 5, 6]
        await clock.advance(5.0)
        assert recorder.batches == [[4, 5, 6], [7, 8]]
        assert [await f for f in futures] == [40, 50, 60, 70, 80]
        await batcher.close()

    run(scenario)


def test_no_more_batches_run_at_once_than_the_capacity() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=1, capacity=2)
        recorder.gate = asyncio.Event()
        futures = [batcher.submit(i) for i in range(5)]
        await settle()
        assert recorder.running == 2
        assert batcher.in_flight == 2
        assert batcher.depth == 3
        await release(recorder)
        assert [await f for f in futures] == [0, 10, 20, 30, 40]
        assert recorder.max_running == 2
        await batcher.close()

    run(scenario)


def test_a_failing_batch_fails_every_caller_of_that_batch_only() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=2, delay=5.0)
        blocker = await occupy(batcher, recorder)
        doomed = [batcher.submit(1), batcher.submit(2)]
        recorder.error = InferenceError("the runtime broke")
        await release(recorder)
        assert recorder.batches == [[-1], [1, 2]]
        for future in [blocker, *doomed]:
            with pytest.raises(InferenceError, match="the runtime broke"):
                await future
        recorder.error = None
        assert await batcher.submit(3) == 30
        await batcher.close()

    run(scenario)


def test_a_wrong_number_of_results_fails_every_caller_loudly(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=2, delay=5.0)
        recorder.short = True
        futures = batcher.submit_many([1, 2])
        await settle()
        for future in futures:
            with pytest.raises(InferenceError, match="returned 1 results for 2 items"):
                await future
        await batcher.close()

    with caplog.at_level(logging.ERROR, logger="visionserve.batching.batcher"):
        run(scenario)
    assert any("1 results for 2 items" in record.getMessage() for record in caplog.records)


def test_a_full_queue_refuses_with_a_retry_hint() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=1, queue=2)
        await occupy(batcher, recorder)
        queued = [batcher.submit(1), batcher.submit(2)]
        with pytest.raises(OverloadedError) as refused:
            batcher.submit(3)
        assert refused.value.retry_after >= 1.0
        with pytest.raises(InvalidParameterError, match="exceed the queue size"):
            batcher.submit_many([1, 2, 3])
        await release(recorder)
        assert [await f for f in queued] == [10, 20]
        await batcher.close()

    run(scenario)


def test_check_room_refuses_as_submit_many_would_and_queues_nothing() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=1, queue=2)
        batcher.check_room(2)  # room: returns
        await occupy(batcher, recorder)
        queued = [batcher.submit(1)]
        batcher.check_room(1)
        with pytest.raises(OverloadedError) as refused:
            batcher.check_room(2)
        assert refused.value.retry_after >= 1.0
        with pytest.raises(InvalidParameterError, match="3 images in one request exceed the queue size"):
            batcher.check_room(3)
        assert batcher.depth == 1  # checking never queues
        await release(recorder)
        assert [await f for f in queued] == [10]
        await batcher.close()
        with pytest.raises(ModelNotReadyError, match="not accepting"):
            batcher.check_room(1)

    run(scenario)


def test_close_runs_the_queued_items_without_waiting_then_refuses_new_ones() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=4, delay=60.0)
        await occupy(batcher, recorder)
        queued = [batcher.submit(1), batcher.submit(2)]
        closing = asyncio.ensure_future(batcher.close())
        await settle()
        with pytest.raises(ModelNotReadyError, match="not accepting"):
            batcher.submit(3)
        assert not closing.done()  # the running batch is still held
        await release(recorder)
        await closing
        assert recorder.batches == [[-1], [1, 2]]
        assert [f.result() for f in queued] == [10, 20]

    run(scenario)


def test_a_cancelled_caller_is_left_out_of_the_batch() -> None:
    async def scenario() -> None:
        clock, recorder = FakeClock(), Recorder()
        batcher = make(recorder, clock, size=4, delay=5.0)
        await occupy(batcher, recorder)
        gone, kept = batcher.submit(1), batcher.submit(2)
        gone.cancel()
        assert batcher.depth == 1
        await release(recorder)
        await clock.advance(5.0)
        assert recorder.batches == [[-1], [2]]
        assert await kept == 20
        await batcher.close()

    run(scenario)


def test_a_batcher_that_was_not_started_refuses_items() -> None:
    async def scenario() -> None:
        batcher: Batcher[int, int] = Batcher(BatchPolicy(), Recorder())
        with pytest.raises(ModelNotReadyError):
            batcher.submit(1)

    run(scenario)


@pytest.mark.parametrize(
    ("size", "delay", "queue", "message"),
    [(0, 0.001, 1, "max_batch_size"), (1, -1.0, 1, "max_queue_delay"), (1, 0.001, 0, "queue_size")],
)
def test_policy_rejects_values_out_of_range(size: int, delay: float, queue: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BatchPolicy(size, delay, queue)


def test_policy_from_a_model_spec_converts_milliseconds() -> None:
    policy = BatchPolicy.from_spec(BatchingSpec(max_batch_size=6, max_queue_delay_ms=25.0, queue_size=9))
    assert policy == BatchPolicy(6, 0.025, 9)


def test_real_clock_partial_batch() -> None:
    """With the default clock a partial batch still leaves (after a short real delay)."""

    async def scenario() -> list[list[int]]:
        recorder = Recorder()
        batcher: Batcher[int, int] = Batcher(BatchPolicy(4, 0.002, 8), recorder)
        batcher.start()
        futures: list[Awaitable[int]] = [batcher.submit(i) for i in (1, 2)]
        assert [await f for f in futures] == [10, 20]
        await batcher.close()
        return recorder.batches

    assert run(scenario) == [[1, 2]]


class DyingClock(FakeClock):
    """A clock whose ``now`` raises when the dispatcher task asks while ``broken``: a bug outside
    the batch function, in the dispatcher itself."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def now(self) -> float:
        task = asyncio.current_task()
        if self.broken and task is not None and task.get_name().startswith("batcher-"):
            raise RuntimeError("a bug in the dispatcher")
        return super().now()


def test_a_dead_dispatcher_fails_queued_and_new_callers_instead_of_hanging(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        recorder, clock = Recorder(), DyingClock()
        failures: list[ModelNotReadyError] = []
        batcher: Batcher[int, int] = Batcher(
            BatchPolicy(4, 0.010, 16), recorder, clock=clock, name="model 'm'", on_failure=failures.append
        )
        batcher.start()
        running = await occupy(batcher, recorder, item=1)
        queued = batcher.submit(2)  # not immediate: once the slot is free, the dispatcher reads the clock
        clock.broken = True
        with caplog.at_level(logging.ERROR):
            await release(recorder)
        assert await running == 10  # the batch that was running answers
        with pytest.raises(ModelNotReadyError, match=r"dispatcher died.*a bug in the dispatcher"):
            await asyncio.wait_for(queued, 1.0)
        with pytest.raises(ModelNotReadyError, match="dispatcher died"):
            batcher.submit(3)
        assert len(failures) == 1 and batcher.failure is failures[0]
        assert any(r.exc_info and "dispatcher died" in r.getMessage() for r in caplog.records)
        await batcher.close()

    run(scenario)


def test_a_cancelled_dispatcher_fails_its_callers_too() -> None:
    async def scenario() -> None:
        recorder, clock = Recorder(), FakeClock()
        batcher = make(recorder, clock)
        running = await occupy(batcher, recorder, item=1)
        queued = batcher.submit(2)
        assert batcher._task is not None
        batcher._task.cancel()
        await settle()
        with pytest.raises(ModelNotReadyError, match="it was cancelled"):
            await asyncio.wait_for(queued, 1.0)
        await release(recorder)
        assert await running == 10
        await batcher.close()

    run(scenario)


def test_a_closed_batcher_is_not_a_failure() -> None:
    async def scenario() -> None:
        failures: list[ModelNotReadyError] = []
        batcher: Batcher[int, int] = Batcher(BatchPolicy(), Recorder(), clock=FakeClock(), on_failure=failures.append)
        batcher.start()
        assert await batcher.submit(4) == 40
        await batcher.close()
        assert failures == [] and batcher.failure is None

    run(scenario)


def test_a_request_never_waits_behind_queued_background_items() -> None:
    async def scenario() -> None:
        recorder, clock = Recorder(), FakeClock()
        batcher = make(recorder, clock, size=2)
        running = await occupy(batcher, recorder, item=1)
        background = [batcher.submit(i, Priority.LOW) for i in (100, 101, 102, 103)]
        request = batcher.submit(5)
        await release(recorder)  # the slot frees: the request goes next, alone, before any job item
        await clock.advance(0.010)  # its queue delay ends (a request waits for company, jobs do not)
        assert recorder.batches[1] == [5]
        assert await request == 50 and await running == 10
        await settle()
        assert [await f for f in background] == [1000, 1010, 1020, 1030]
        assert recorder.batches[2:] == [[100, 101], [102, 103]]  # background items batch among themselves
        await batcher.close()

    run(scenario)


def test_background_items_leave_a_slot_free_for_requests() -> None:
    async def scenario() -> None:
        recorder, clock = Recorder(), FakeClock()
        recorder.gate = asyncio.Event()
        batcher = make(recorder, clock, size=1, capacity=2)
        background = [batcher.submit(i, Priority.LOW) for i in (100, 101)]
        await settle()
        assert recorder.batches == [[100]] and recorder.running == 1  # one slot of two for background work
        request = batcher.submit(5)
        await settle()
        assert recorder.batches == [[100], [5]]  # the request starts at once on the free slot
        await release(recorder)
        assert await request == 50 and [await f for f in background] == [1000, 1010]
        await batcher.close()

    run(scenario)


def test_each_priority_has_its_own_queue_bound() -> None:
    async def scenario() -> None:
        recorder, clock = Recorder(), FakeClock()
        batcher = make(recorder, clock, size=1, queue=2)
        running = await occupy(batcher, recorder)
        low = [batcher.submit(i, Priority.LOW) for i in (100, 101)]
        with pytest.raises(OverloadedError):
            batcher.submit(102, Priority.LOW)
        high = [batcher.submit(i) for i in (1, 2)]  # background work does not fill the requests' queue
        with pytest.raises(OverloadedError):
            batcher.submit(3)
        await release(recorder)
        assert await running == -10 and [await f for f in high + low] == [10, 20, 1000, 1010]
        await batcher.close()

    run(scenario)


def test_a_lone_requests_batch_never_exceeds_capacity_while_the_dispatcher_gathers() -> None:
    """The callback that starts a lone request's batch and the dispatcher, waiting for company for
    an item whose caller went away, must not both take the one slot."""

    async def scenario() -> tuple[list[list[int]], int]:
        clock, recorder = FakeClock(), Recorder()
        recorder.gate = asyncio.Event()
        batcher: Batcher[int, int] = Batcher(BatchPolicy(4, 0.010, 64), recorder, clock=clock, capacity=1)
        batcher.start()
        await settle()
        batcher.submit(0)
        await settle()  # batch [0] holds the slot
        gone = batcher.submit(1)
        await settle()  # waits behind it
        recorder.gate.set()
        await settle()  # [0] ends: the dispatcher waits for company for 1
        recorder.gate.clear()
        gone.cancel()  # its caller goes away
        await settle()
        batcher.submit(2)  # finds the queue empty and the slot free: its batch starts at once
        await settle()
        batcher.submit(3)  # wakes the dispatcher, which must wait for the slot
        await settle()
        in_flight = batcher.in_flight
        recorder.gate.set()
        await clock.advance(0.011)
        await settle()
        await batcher.close()
        return recorder.batches, max(in_flight, recorder.max_running)

    batches, most = run(scenario)
    assert most == 1
    assert batches == [[0], [2], [3]]


def test_capacity_holds_when_low_and_high_items_arrive_in_one_turn() -> None:
    async def scenario() -> int:
        clock, recorder = FakeClock(), Recorder()
        recorder.gate = asyncio.Event()
        batcher: Batcher[int, int] = Batcher(BatchPolicy(3, 0.010, 64), recorder, clock=clock, capacity=2)
        batcher.start()
        await settle()
        batcher.submit(100, Priority.LOW)  # wakes the dispatcher first
        batcher.submit_many([1])  # a lone HIGH item: its start is scheduled
        batcher.submit_many([2, 3, 4, 5])  # same turn
        await settle()
        batcher.submit(6)
        await settle()
        await clock.advance(0.011)
        await settle()
        most = recorder.max_running
        recorder.gate.set()
        await settle()
        await clock.advance(0.011)
        await settle()
        await batcher.close()
        assert sorted(i for batch in recorder.batches for i in batch) == [1, 2, 3, 4, 5, 6, 100]
        return most

    assert run(scenario) == 2
