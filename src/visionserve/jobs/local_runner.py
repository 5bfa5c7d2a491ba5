"""The embedded runner: a pool of threads in the server process; their items run on the server's served
models (at a lower priority than requests, see :class:`~visionserve.jobs.detectors.ServedModels`).

Items wait in an in-memory queue; the database is the durable copy, so the service re-submits every
unfinished item when it starts again. Webhooks are delivered by one more thread, with backoff waits
that end at once on :meth:`LocalRunner.stop`. On Linux the job threads run at a lower priority
(a higher nice value, set per thread), so that synchronous requests get the CPU first.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence

from visionserve.errors import ConfigError, OverloadedError, ShuttingDownError, StorageError, VisionServeError
from visionserve.jobs.processing import ItemProcessor
from visionserve.jobs.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

_STOP = ("", -1)
#: How much nicer than the server's request threads the job threads are.
JOB_NICE = 10


def lower_thread_priority(increment: int) -> None:
    """Raise the nice value of the calling thread only (Linux applies ``setpriority`` to a thread id);
    a no-op elsewhere or when refused."""
    if increment <= 0 or sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + increment))
    except OSError as exc:
        log.debug("job thread keeps its priority: %s", exc)


class LocalRunner:
    """``workers`` threads; thread ``n`` builds its processor with ``make_processor(n)`` when it starts,
    ``webhooks`` may be None (webhooks turned off). A :class:`StorageError`, a server that cannot
    take the item now (:class:`ShuttingDownError`, :class:`OverloadedError`) or an unexpected
    exception puts the item back after ``retry_s`` seconds (an
    item whose claims keep failing ends failed after ``max_attempts`` claims). ``nice`` is added to the
    nice value of each job thread (0 keeps it)."""

    def __init__(
        self,
        make_processor: Callable[[int], ItemProcessor],
        workers: int = 1,
        webhooks: WebhookDispatcher | None = None,
        retry_s: float = 2.0,
        nice: int = JOB_NICE,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"the embedded job pool needs at least 1 worker, got {workers}")
        self._make_processor = make_processor
        self._workers = workers
        self._webhooks = webhooks
        self._retry_s = retry_s
        self._nice = nice
        self._items: queue.Queue[tuple[str, int]] = queue.Queue()
        self._hooks: queue.Queue[str] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def name(self) -> str:
        return "local"

    @property
    def durable(self) -> bool:
        return False

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, args=(n,), name=f"visionserve-job-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        hooks = threading.Thread(target=self._deliver, name="visionserve-webhooks", daemon=True)
        hooks.start()
        self._threads.append(hooks)

    def submit(self, job_id: str, indices: Sequence[int]) -> None:
        for index in indices:
            self._items.put((job_id, index))

    def notify(self, job_id: str) -> None:
        if self._webhooks is not None:
            self._hooks.put(job_id)

    def queue_depth(self) -> int | None:
        return self._items.qsize()

    def stop(self) -> None:
        self._stopping.set()
        for _ in range(self._workers):
            self._items.put(_STOP)
        self._hooks.put("")
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._drain()

    def _drain(self) -> None:
        """Forget what is still queued: it stays unfinished in the database and is resubmitted on start."""
        for waiting in (self._items, self._hooks):
            while True:
                try:
                    waiting.get_nowait()
                except queue.Empty:
                    break

    def _work(self, n: int) -> None:
        lower_thread_priority(self._nice)
        processor = self._make_processor(n)
        try:
            while not self._stopping.is_set():
                job_id, index = self._items.get()
                if (job_id, index) == _STOP or self._stopping.is_set():
                    break
                self._process(processor, job_id, index)
        finally:
            processor.close()

    def _process(self, processor: ItemProcessor, job_id: str, index: int) -> None:
        try:
            processor.process(job_id, index)
        except (StorageError, ShuttingDownError, OverloadedError) as exc:
            log.warning("item %s/%d: %s; retrying in %.1f s", job_id, index, exc, self._retry_s)
            if not self._stopping.wait(self._retry_s):
                self._items.put((job_id, index))
        except Exception:  # a bug must not end this thread: the pool would silently shrink
            log.exception("item %s/%d: unexpected error; retrying in %.1f s", job_id, index, self._retry_s)
            if not self._stopping.wait(self._retry_s):  # each claim counts an attempt: it ends failed
                self._items.put((job_id, index))

    def _deliver(self) -> None:
        while not self._stopping.is_set():
            job_id = self._hooks.get()
            if not job_id or self._webhooks is None:
                continue
            try:
                self._webhooks.run(job_id, self._stopping.wait)
            except VisionServeError as exc:
                log.warning("webhook of job %s: %s", job_id, exc)
            except Exception:  # a bug must not end this thread: no later webhook would be sent
                log.exception("webhook of job %s: unexpected error", job_id)
        if self._webhooks is not None:
            self._webhooks.close()
