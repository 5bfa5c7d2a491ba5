"""The dynamic batcher: a queue, a dispatcher task, and futures that carry each caller's result.

Callers :meth:`Batcher.submit` items and await the returned futures. One dispatcher task waits for
a free slot (``capacity`` batches may run at once: one per model instance), then gathers up to
``max_batch_size`` queued items and hands them to the batch function as one list:

* a full batch leaves at once;
* a partial batch leaves when its oldest item has waited ``max_queue_delay`` (counted from when it
  was queued, so time spent waiting for a slot counts too);
* an item that finds the queue empty and a slot free leaves at once, alone (or with the items
  submitted in the same call): a lone request never waits for company (a ``HIGH`` one starts its
  batch at the next turn of the loop from a callback that :meth:`Batcher.submit_many` schedules,
  without waking the dispatcher task);
* the batch function's failure fails every caller of that batch; a result list of the wrong length
  fails them all with :class:`~visionserve.errors.InferenceError` (and an error log line);
* a full queue refuses new items with :class:`~visionserve.errors.OverloadedError`;
* items have a :class:`Priority`. Synchronous requests are ``HIGH``; background work (job items)
  is ``LOW`` and never delays them by more than one forward pass: a free slot always takes the
  queued ``HIGH`` items first; ``LOW`` items run only when no ``HIGH`` item waits, in batches of
  their own (a ``HIGH`` item never shares, and so never pays for, a ``LOW`` one's forward pass), at
  once (they do not wait for company), and on at most ``capacity - 1`` slots when there are several
  (one slot stays free for requests). Each priority has its own queue bound, so background work
  never makes requests overloaded, nor the reverse;
* :meth:`Batcher.close` stops accepting items, runs what is queued without further waiting, and
  returns when every batch has finished;
* a dispatcher task that dies (a bug outside the batch function, or a cancellation other than
  :meth:`close`) is logged with its traceback, fails every queued caller and every later submit with
  :class:`~visionserve.errors.ModelNotReadyError` (HTTP 503), and calls ``on_failure`` so that the
  owner can mark the model failed: callers never wait on a queue that nobody serves. Batches already
  running still deliver their results.

The batcher is used from one event loop; time comes from an injected :class:`Clock` so that tests
can drive it without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from visionserve.batching.policy import BatchPolicy
from visionserve.errors import InferenceError, InvalidParameterError, ModelNotReadyError, OverloadedError

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")


class Priority(StrEnum):
    """Who waits for an item: a client on the line (``HIGH``) or background work (``LOW``)."""

    HIGH = "high"
    LOW = "low"


ResultT = TypeVar("ResultT")

#: Weight of the newest batch duration in the moving average behind :meth:`Batcher.retry_after`.
_EWMA_WEIGHT = 0.2


class Clock(Protocol):
    """Monotonic time in seconds, and a way to wait for it."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(eq=False)
class _Entry(Generic[ItemT, ResultT]):
    item: ItemT
    future: asyncio.Future[ResultT]
    queued_at: float
    #: Found the queue empty and a slot free: leaves without waiting for company.
    immediate: bool


class Batcher(Generic[ItemT, ResultT]):
    """Groups submitted items into batches for ``run_batch``.

    Args:
        policy: batch size, queue delay and queue bound.
        run_batch: an async function from a list of items to one result per item, in order. It may
            raise; every caller of the batch then gets that exception.
        clock: time source (default: :class:`MonotonicClock`).
        capacity: how many batches may run at once (>= 1).
        name: used in error messages and logs (e.g. the model's name).
        on_failure: called once, on the event loop, with the :class:`ModelNotReadyError` that
            queued and later callers get, when the dispatcher task dies (see the module docstring).
    """

    def __init__(
        self,
        policy: BatchPolicy,
        run_batch: Callable[[list[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        clock: Clock | None = None,
        capacity: int = 1,
        name: str = "batcher",
        on_failure: Callable[[ModelNotReadyError], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.policy = policy
        self.name = name
        self._run_batch = run_batch
        self._clock = clock or MonotonicClock()
        self._capacity = capacity
        self._queue: deque[_Entry[ItemT, ResultT]] = deque()
        self._low: deque[_Entry[ItemT, ResultT]] = deque()
        self._running = 0
        self._running_low = 0
        self._low_capacity = max(1, capacity - 1)
        self._wakeup = asyncio.Event()
        self._start_soon = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._mean_batch_s: float | None = None
        self._on_failure = on_failure
        self._failure: ModelNotReadyError | None = None

    @property
    def depth(self) -> int:
        """Items waiting for a batch, of either priority (not counting those running)."""
        return _waiting(self._queue) + _waiting(self._low)

    @property
    def in_flight(self) -> int:
        """Batches running now."""
        return self._running

    @property
    def failure(self) -> ModelNotReadyError | None:
        """Why the batcher stopped serving (its dispatcher died), or None while it is healthy."""
        return self._failure

    def start(self) -> None:
        """Start the dispatcher task (call from the event loop that will use the batcher)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._dispatch(), name=f"batcher-{self.name}")
            self._task.add_done_callback(self._dispatcher_ended)

    def _dispatcher_ended(self, task: asyncio.Task[None]) -> None:
        """Fail the queue (and report) unless the dispatcher returned because :meth:`close` asked."""
        error = None if task.cancelled() else task.exception()
        if error is None and not task.cancelled() and self._closing:
            return
        reason = "it was cancelled" if error is None else f"{type(error).__name__}: {error}"
        message = f"{self.name} stopped serving requests: its batch dispatcher died ({reason})"
        level = logging.WARNING if error is None else logging.ERROR  # a cancellation is no bug of ours
        logger.log(level, "%s; failing %d queued request(s)", message, self.depth, exc_info=error)
        self._failure = ModelNotReadyError(message)
        for queue in (self._queue, self._low):
            while queue:
                entry = queue.popleft()
                if not entry.future.done():
                    entry.future.set_exception(ModelNotReadyError(message))
        if self._on_failure is not None:
            self._on_failure(self._failure)

    def submit(self, item: ItemT, priority: Priority = Priority.HIGH) -> asyncio.Future[ResultT]:
        """Queue one item; the future resolves to its result. See :meth:`submit_many`."""
        return self.submit_many([item], priority)[0]

    def submit_many(self, items: Sequence[ItemT], priority: Priority = Priority.HIGH) -> list[asyncio.Future[ResultT]]:
        """Queue ``items`` together (they leave in the same batch when it has room); one future each.

        Raises what :meth:`check_room` raises for ``len(items)``.
        """
        self.check_room(len(items), priority)
        loop = asyncio.get_running_loop()
        now = self._clock.now()
        queue = self._queue if priority is Priority.HIGH else self._low
        immediate = not _waiting(queue) and self._running < self._capacity
        entries = [_Entry[ItemT, ResultT](item, loop.create_future(), now, immediate) for item in items]
        queue.extend(entries)
        if immediate and priority is Priority.HIGH:
            if not self._start_soon:  # what the dispatcher would do next, without waking it
                self._start_soon = True
                loop.call_soon(self._start_waiting)
        else:
            self._wakeup.set()
        return [entry.future for entry in entries]

    def check_room(self, count: int, priority: Priority = Priority.HIGH) -> None:
        """Return when :meth:`submit_many` would take ``count`` items now, else raise: a cheap check
        before costly work (decoding images) that a refusal would waste.

        Raises :class:`ModelNotReadyError` once :meth:`close` was called (or before :meth:`start`, or
        after the dispatcher died),
        :class:`OverloadedError` when the queue of ``priority`` has no room for all of them, and
        :class:`InvalidParameterError` when they could never fit (more than ``queue_size``).
        """
        if self._failure is not None:
            raise ModelNotReadyError(str(self._failure))
        if self._closing or self._task is None:
            raise ModelNotReadyError(f"{self.name} is not accepting requests: it is stopping or stopped")
        if count > self.policy.queue_size:
            raise InvalidParameterError(
                f"{count} images in one request exceed the queue size of {self.name} ({self.policy.queue_size})"
            )
        if _waiting(self._queue if priority is Priority.HIGH else self._low) + count > self.policy.queue_size:
            raise OverloadedError(
                f"{self.name} is overloaded: its queue of {self.policy.queue_size} is full", self.retry_after()
            )

    def retry_after(self) -> float:
        """Seconds until the queue has likely made room: the queued batches times the mean batch
        duration, spread over the slots; at least one second."""
        batches = math.ceil((_waiting(self._queue) + 1) / self.policy.max_batch_size)
        per_batch = self._mean_batch_s if self._mean_batch_s is not None else 1.0
        return max(1.0, batches * per_batch / self._capacity)

    async def close(self) -> None:
        """Refuse new items, run the queued ones without waiting for company, return when all done."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)  # a dead dispatcher was reported
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def _dispatch(self) -> None:
        while True:
            while (queue := self._next_queue()) is None:
                if self._closing and not self.depth:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            low = queue is self._low
            if not low:
                await self._gather_company()
                if self._next_queue() is not queue:
                    continue  # meanwhile a batch started from _start_waiting took the slot
            batch = self._take(queue)
            if batch:
                self._start(batch, low)

    def _start_waiting(self) -> None:
        """Start the waiting ``HIGH`` items on a free slot (those submitted in the same turn of the
        loop as the immediate one leave with it); the dispatcher takes any left over."""
        self._start_soon = False
        if self._next_queue() is self._queue:
            self._start(self._take(self._queue), low=False)
        if self.depth:
            self._wakeup.set()

    def _start(self, batch: list[_Entry[ItemT, ResultT]], low: bool) -> None:
        """Run ``batch`` on a free slot."""
        self._running += 1
        self._running_low += low
        task = asyncio.get_running_loop().create_task(self._execute(batch, low))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    def _next_queue(self) -> deque[_Entry[ItemT, ResultT]] | None:
        """The queue a free slot serves now (``HIGH`` first), or None when no slot may start a batch."""
        if self._running >= self._capacity:
            return None
        if _waiting(self._queue):
            return self._queue
        if _waiting(self._low) and self._running_low < self._low_capacity:
            return self._low
        return None

    async def _gather_company(self) -> None:
        """Wait until the batch is full, the oldest item's delay is over, or the batcher closes."""
        head = next(entry for entry in self._queue if not entry.future.done())
        if head.immediate or self.policy.max_batch_size == 1:
            return
        deadline = head.queued_at + self.policy.max_queue_delay_s
        while _waiting(self._queue) < self.policy.max_batch_size and not self._closing and not head.future.done():
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                return
            await self._wait_for_item(remaining)

    async def _wait_for_item(self, timeout: float) -> None:
        """Return on the next submit (or close), or after ``timeout`` seconds of the clock."""
        self._wakeup.clear()
        waiter = asyncio.ensure_future(self._wakeup.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    def _take(self, queue: deque[_Entry[ItemT, ResultT]]) -> list[_Entry[ItemT, ResultT]]:
        """Pop up to ``max_batch_size`` items of ``queue`` whose callers still wait."""
        batch: list[_Entry[ItemT, ResultT]] = []
        while queue and len(batch) < self.policy.max_batch_size:
            entry = queue.popleft()
            if not entry.future.done():
                batch.append(entry)
        return batch

    async def _execute(self, batch: list[_Entry[ItemT, ResultT]], low: bool) -> None:
        started = self._clock.now()
        try:
            results = list(await self._run_batch([entry.item for entry in batch]))
            if len(results) != len(batch):
                logger.error("%s: batch function returned %d results for %d items", self.name, len(results), len(batch))
                raise InferenceError(
                    f"{self.name}: the batch function returned {len(results)} results for {len(batch)} items"
                )
        except asyncio.CancelledError:
            for entry in batch:
                entry.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the batch raised goes to each of its callers
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
        else:
            for entry, result in zip(batch, results, strict=True):
                if not entry.future.done():
                    entry.future.set_result(result)
        finally:
            self._running -= 1
            self._running_low -= low
            self._record(self._clock.now() - started)
            if self.depth or self._closing:  # a slot is free for whoever waits
                self._wakeup.set()

    def _record(self, seconds: float) -> None:
        if self._mean_batch_s is None:
            self._mean_batch_s = seconds
        else:
            self._mean_batch_s += _EWMA_WEIGHT * (seconds - self._mean_batch_s)


def _waiting(queue: deque[_Entry[ItemT, ResultT]]) -> int:
    """Entries of ``queue`` whose callers still wait."""
    return sum(1 for entry in queue if not entry.future.done())
