"""How many OpenCV threads a forward pass gets: all cores for a lone request, one per instance
under load. The choice, and the numbers behind it.

Measured on the 2-core development machine (SSD MobileNet v2 COCO, the default model; photos from
``skimage.data`` as JPEG; throwaway scripts; the machine is shared, so figures move by about 10%
from run to run)::

    one net, 2 OpenCV threads, one image at a time      36 ms/image p50, 24-27 images/s
    one net, 1 OpenCV thread, one image at a time       62 ms/image p50, 16 images/s
    two nets in two Python threads, 1 OpenCV thread     29 images/s (decode included), 32 (forward only)
    two nets in two Python threads, 2 OpenCV threads    22 images/s (3 busy threads on 2 cores)
    two processes, 1 OpenCV thread each                 31 images/s (decode included)
    one net, batch of 4 instead of 1, per image         the same within the noise (no gain on CPU)
    one net, batch size changing between passes        +10-15 ms per change (OpenCV re-allocates)

Two nets in two threads of one process reach the throughput of two processes within the noise
(``cv2.dnn`` releases the GIL), so visionserve runs instances as threads and needs no worker
processes or shared memory; but only with one OpenCV thread each, while a lone request is fastest
with every core. ``cv2.setNumThreads`` is process-global, and it is not safe to call while another
thread is inside an OpenCV parallel loop (with the pthreads backend of the OpenCV wheels, dropping
to 1 thread stops and joins the pool's workers, which can race with a loop that is waking them), so
this governor changes it only while no forward pass runs:

* a forward pass that starts while none runs picks the mode: *parallel* (1 thread each, up to
  ``cores`` passes at once) when more work is queued or passes overlapped within the last
  ``window`` seconds (so two clients taking turns do not serialize on solo passes), else *solo*
  (every core);
* in parallel mode further passes start at once, up to ``cores`` of them;
* in solo mode a second pass waits for the first to end (the cores are busy anyway), then the mode
  is chosen again: under sustained load it stays parallel, a lone request gets solo mode.

Through the whole server (``python -m benchmarks.server`` and interleaved runs of the model alone
and the server, 640x480 JPEG, same machine, same run): concurrency 16 reaches 0.90-0.98 of two
single-thread processes (median 0.94, no errors); concurrency 1 answers in 1.08-1.11 times the p50
of the model alone with both cores on an already decoded image (the difference is decoding the
JPEG, about 1 ms, and HTTP, about 1.5 ms); concurrency 2 reaches 27 images/s (24 without the
``window``).

Passes of models that do not use OpenCV's thread pool for inference (plugins, ONNX Runtime) never
wait, but they count as running, so that the thread count never changes under them either.

The governor lives on the event loop (no locks); the thread count is set from the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable

import cv2


def set_opencv_threads(count: int) -> None:
    """``cv2.setNumThreads``: the number of threads OpenCV's parallel loops use in this process."""
    cv2.setNumThreads(count)


class ThreadGovernor:
    """Admits forward passes and sets OpenCV's thread count between them (see the module docstring).

    Args:
        cores: CPU cores available to inference (>= 1).
        set_threads: applies a thread count (default: ``cv2.setNumThreads``); tests inject a recorder.
        window: seconds during which passes that overlapped keep the next ones in parallel mode.
        clock: monotonic seconds (tests inject a fake).
    """

    def __init__(
        self,
        cores: int,
        set_threads: Callable[[int], None] = set_opencv_threads,
        window: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cores < 1:
            raise ValueError(f"cores must be at least 1, got {cores}")
        self.cores = cores
        self._set_threads = set_threads
        self._window = window
        self._clock = clock
        self._overlapped_at = -math.inf
        self._threads: int | None = None
        self._running = 0
        self._running_opencv = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._pending = 0

    @property
    def threads(self) -> int | None:
        """The thread count last applied (None before the first pass)."""
        return self._threads

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        """Passes waiting for a lane."""
        return self._pending

    @contextlib.asynccontextmanager
    async def lane(self, uses_opencv: bool, backlog: Callable[[], bool]) -> AsyncIterator[int | None]:
        """Hold a lane for one forward pass; yields the OpenCV thread count it runs with.

        ``uses_opencv``: the pass runs OpenCV DNN and shares the cores through its thread pool.
        ``backlog()``: whether more work waits behind this pass (so parallel mode pays off); asked
        when the pass is admitted, which may be after a wait.
        """
        await self._enter(uses_opencv, backlog)
        try:
            yield self._threads
        finally:
            self._leave(uses_opencv)

    async def _enter(self, uses_opencv: bool, backlog: Callable[[], bool]) -> None:
        self._pending += 1
        try:
            while not self._try_enter(uses_opencv, lambda: self._pending > 1 or backlog()):
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        finally:
            self._pending -= 1

    def _try_enter(self, uses_opencv: bool, backlog: Callable[[], bool]) -> bool:
        if self._running == 0:
            recently = self._clock() - self._overlapped_at < self._window
            self._apply(1 if self.cores > 1 and (recently or backlog()) else self.cores)
        elif uses_opencv and self._running_opencv > 0:
            self._overlapped_at = self._clock()
            if self._threads != 1 or self._running_opencv >= self.cores:
                return False  # solo mode is busy, or every core has a pass: wait for one to end
        self._running += 1
        self._running_opencv += uses_opencv
        return True

    def _leave(self, uses_opencv: bool) -> None:
        self._running -= 1
        self._running_opencv -= uses_opencv
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _apply(self, threads: int) -> None:
        if threads != self._threads:
            self._set_threads(threads)
            self._threads = threads
