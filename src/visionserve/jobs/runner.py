"""Where job items run: the :class:`JobRunner` protocol.

Two runners implement it: :class:`~visionserve.jobs.local_runner.LocalRunner`, a pool of threads in
the server process (the default), and ``CeleryRunner`` in :mod:`visionserve.jobs.celery_app`, which
hands each item to a broker for ``visionserve worker`` processes. The service depends on this
protocol only; a test can give it any object with these methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class JobRunner(Protocol):
    @property
    def name(self) -> str:
        """``local`` or ``celery``; shown in health and metrics."""
        ...

    @property
    def durable(self) -> bool:
        """True when submitted items survive a restart of the server (a broker holds them); False when
        the server must re-submit every unfinished item when it starts."""
        ...

    def start(self) -> None: ...

    def submit(self, job_id: str, indices: Sequence[int]) -> None:
        """Process these items of a stored job, in any order, each at least once."""
        ...

    def notify(self, job_id: str) -> None:
        """Deliver the webhook of an ended job (if it has one)."""
        ...

    def queue_depth(self) -> int | None:
        """Items submitted and not yet taken, if the runner can tell cheaply; else None."""
        ...

    def stop(self) -> None:
        """Stop taking items; items in progress finish, the rest stay in the database (or broker)."""
        ...
