"""Dynamic batching: requests wait a bounded time to share one forward pass (Triton's idea)."""

from visionserve.batching.batcher import Batcher, Clock, MonotonicClock, Priority
from visionserve.batching.policy import BatchPolicy

__all__ = ["BatchPolicy", "Batcher", "Clock", "MonotonicClock", "Priority"]
