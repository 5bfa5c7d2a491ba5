"""Fan-out of one stream's outputs to its viewers, each with a one-slot mailbox.

The session publishes each processed frame once; every subscriber's :class:`Mailbox` keeps only the
newest item. A viewer that reads slower than the stream finds the older items replaced (counted in
``dropped``): it never slows the others, and memory is one item per viewer whatever its speed.
Everything here runs on the event loop (no locks); :meth:`Hub.close` wakes every viewer with the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """One viewer's slot: :meth:`put` replaces an unread item, :meth:`get` waits for the next one."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self.closed = False
        self.dropped = 0
        self.delivered = 0

    def put(self, item: T) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self) -> T | None:
        """The newest item not read yet (waiting for one), or None once the mailbox is closed."""
        while self._item is None:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        self.delivered += 1
        return item


class Hub(Generic[T]):
    """The subscribers of one kind of output of one stream. ``idle_since``: monotonic time since
    which it has had no subscriber (None while it has some)."""

    def __init__(self) -> None:
        self._boxes: set[Mailbox[T]] = set()
        self.closed = False
        self.idle_since: float | None = time.monotonic()
        self.latest: T | None = None

    @property
    def count(self) -> int:
        return len(self._boxes)

    def publish(self, item: T) -> None:
        """Hand ``item`` to every subscriber (and keep it as :attr:`latest`)."""
        self.latest = item
        for box in self._boxes:
            box.put(item)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Mailbox[T]]:
        """A mailbox for the duration of the block (already closed when the hub is)."""
        box: Mailbox[T] = Mailbox()
        if self.closed:
            box.close()
        self._boxes.add(box)
        self.idle_since = None
        try:
            yield box
        finally:
            self._boxes.discard(box)
            if not self._boxes:
                self.idle_since = time.monotonic()

    def close(self) -> None:
        """End every subscription (their :meth:`Mailbox.get` returns None) and refuse new ones."""
        self.closed = True
        for box in self._boxes:
            box.close()
