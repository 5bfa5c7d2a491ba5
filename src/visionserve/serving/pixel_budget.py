"""A process-wide budget of decoded pixels: an asyncio semaphore counted in pixels.

The pixel cap of one image (``max_image_pixels``) does not bound memory: 64 small, highly
compressible 7000x7000 PNGs fit in a 20 MB body and decode to gigabytes. Every decode therefore
reserves its pixel count (known from the image header before any pixel is decoded) from one
:class:`PixelBudget` and gives it back when the request no longer needs its images.

Waiters are served first come, first served (a large request at the head is not starved by small
ones behind it). A reservation that cannot be granted within ``max_wait_s`` is refused with
:class:`~visionserve.errors.OverloadedError` (HTTP 429 + Retry-After); one that exceeds the whole
budget on its own with :class:`~visionserve.errors.ImageTooLargeError` (413). Used from one event
loop; time comes from an injected :class:`~visionserve.batching.batcher.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from visionserve.batching.batcher import Clock, MonotonicClock
from visionserve.errors import ImageTooLargeError, OverloadedError

#: Default budget: 400 megapixels, about 1.2 GB of decoded BGR images at once.
DEFAULT_BUDGET_PIXELS = 400_000_000
#: Default longest wait for a reservation before the request is refused with 429.
DEFAULT_WAIT_S = 2.0


@dataclass(eq=False)
class _Waiter:
    pixels: int
    future: asyncio.Future[None]


class PixelReservation:
    """Pixels held from a :class:`PixelBudget` until :meth:`release` (idempotent), or the end of an
    ``async with`` block."""

    def __init__(self, budget: PixelBudget, pixels: int) -> None:
        self._budget = budget
        self.pixels = pixels

    def release(self) -> None:
        """Give the pixels back (once; later calls do nothing)."""
        pixels, self.pixels = self.pixels, 0
        if pixels:
            self._budget._give_back(pixels)

    async def __aenter__(self) -> PixelReservation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class PixelBudget:
    """At most ``capacity`` decoded pixels held at once, across every request of the process.

    Args:
        capacity: pixels that may be held at once (>= 1).
        max_wait_s: longest wait for a reservation before :class:`OverloadedError`.
        clock: time source of the wait (tests inject a fake one).
    """

    def __init__(
        self, capacity: int = DEFAULT_BUDGET_PIXELS, max_wait_s: float = DEFAULT_WAIT_S, *, clock: Clock | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 pixel, got {capacity}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be at least 0, got {max_wait_s}")
        self.capacity = capacity
        self.max_wait_s = max_wait_s
        self._clock = clock or MonotonicClock()
        self._held = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def held(self) -> int:
        """Pixels reserved now."""
        return self._held

    async def reserve(self, pixels: int, what: str = "this request's images") -> PixelReservation:
        """Hold ``pixels`` (>= 0) until the returned reservation is released.

        Granted at once when nobody waits and they fit; otherwise after the earlier waiters, as
        soon as enough is given back. Raises :class:`ImageTooLargeError` when ``pixels`` exceed the
        whole budget (``what`` names them in the message) and :class:`OverloadedError` when not
        granted within ``max_wait_s``. A cancelled wait holds nothing.
        """
        if pixels > self.capacity:
            raise ImageTooLargeError(
                f"{what} decode to {pixels} pixels, more than the server decodes at once "
                f"({self.capacity} pixels, --max-decoded-pixels)"
            )
        if pixels <= 0:
            return PixelReservation(self, 0)
        if not self._waiters and self._held + pixels <= self.capacity:
            self._held += pixels
            return PixelReservation(self, pixels)
        waiter = _Waiter(pixels, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        await self._wait(waiter)
        return PixelReservation(self, pixels)

    async def _wait(self, waiter: _Waiter) -> None:
        """Until ``waiter`` is granted (its pixels then count as held) or the wait times out."""
        timer = asyncio.ensure_future(self._clock.sleep(self.max_wait_s))
        try:
            await asyncio.wait({waiter.future, timer}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._abandon(waiter)
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        if not waiter.future.done():
            self._abandon(waiter)
            raise OverloadedError(
                f"the server is decoding {self._held} of its {self.capacity} pixels for other requests; retry later",
                retry_after=max(1.0, self.max_wait_s),
            )

    def _abandon(self, waiter: _Waiter) -> None:
        """Take ``waiter`` out of the line; pixels already granted to it go back."""
        if waiter.future.done() and not waiter.future.cancelled():
            self._give_back(waiter.pixels)
            return
        waiter.future.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        self._grant()  # the line may have been blocked by this waiter only

    def _give_back(self, pixels: int) -> None:
        self._held -= pixels
        self._grant()

    def _grant(self) -> None:
        """Grant the waiters at the head of the line, in order, while they fit."""
        while self._waiters and self._held + self._waiters[0].pixels <= self.capacity:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                self._held += waiter.pixels
                waiter.future.set_result(None)


@dataclass
class PixelHold:
    """The reservations of one request, released together by :meth:`release` (when its images
    are no longer needed: the answer has been built), or on leaving a ``with PixelHold() as hold:``
    block around the request's work."""

    reservations: list[PixelReservation] = field(default_factory=list)

    def add(self, reservation: PixelReservation) -> None:
        self.reservations.append(reservation)

    def release(self) -> None:
        """Release every reservation added so far (idempotent)."""
        for reservation in self.reservations:
            reservation.release()
        self.reservations.clear()

    def __enter__(self) -> PixelHold:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
