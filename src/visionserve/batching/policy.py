"""When a batch leaves: its largest size, the longest wait, and how many requests may queue."""

from __future__ import annotations

from dataclasses import dataclass

from visionserve.errors import ConfigError
from visionserve.models.spec import BatchingSpec


@dataclass(frozen=True)
class BatchPolicy:
    """How a :class:`~visionserve.batching.batcher.Batcher` groups requests.

    Attributes:
        max_batch_size: a batch holds at most this many items (>= 1); a full batch leaves at once.
        max_queue_delay_s: an item waits at most this long (seconds, >= 0, counted from when it was
            queued) for others to join its batch; an item that finds the queue empty and a free slot
            never waits.
        queue_size: at most this many items wait (>= 1); one more is refused with
            :class:`~visionserve.errors.OverloadedError`.

    Raises :class:`~visionserve.errors.ConfigError` for values out of range.
    """

    max_batch_size: int = 8
    max_queue_delay_s: float = 0.002
    queue_size: int = 64

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_queue_delay_s < 0:
            raise ConfigError(f"max_queue_delay must not be negative, got {self.max_queue_delay_s}")
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be at least 1, got {self.queue_size}")

    @classmethod
    def from_spec(cls, spec: BatchingSpec) -> BatchPolicy:
        """The policy of a model's ``batching`` section (``max_queue_delay_ms`` in milliseconds)."""
        return cls(spec.max_batch_size, spec.max_queue_delay_ms / 1000.0, spec.queue_size)
