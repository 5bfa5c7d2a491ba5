"""Per-model inference statistics, as Triton counts them: requests, forward passes, and their times.

The service feeds them (every interface goes through it: HTTP, gRPC, jobs, streams); the KServe v2
statistics extension (:mod:`visionserve.api.wire.triton_stats`) renders them. Two kinds of events:

- a *request* (one :meth:`DetectionService.detect` call, of one or more images) succeeds or fails:
  ``success``/``fail`` count requests and sum their durations (from the call to its result); a
  successful request also adds its queue time and the compute times of its forward pass
  (``compute_input`` = preprocessing, ``compute_infer`` = the network, ``compute_output`` = decoding
  and NMS), as Triton attributes a whole batch's compute time to each request in it;
- an *execution* (one forward pass of ``batch_size`` images) adds 1 to ``execution_count``,
  ``batch_size`` to ``inference_count``, and its compute times to the statistics of its batch size.

Times are integer nanoseconds. Counters only grow (since the server started; unloading a model keeps
them). Each :class:`ModelStats` holds one lock taken for a few additions: cheap enough for every
request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as _replace

from visionserve.serving.results import Timings


@dataclass(frozen=True)
class Duration:
    """How many events, and their total duration in nanoseconds."""

    count: int = 0
    ns: int = 0

    def plus(self, ns: int) -> Duration:
        return Duration(self.count + 1, self.ns + max(0, ns))


@dataclass(frozen=True)
class ComputeTimes:
    """The three compute phases of one forward pass, in nanoseconds."""

    input_ns: int
    infer_ns: int
    output_ns: int

    @classmethod
    def from_ms(cls, preprocess_ms: float, inference_ms: float, postprocess_ms: float) -> ComputeTimes:
        return cls(ms_to_ns(preprocess_ms), ms_to_ns(inference_ms), ms_to_ns(postprocess_ms))


@dataclass(frozen=True)
class BatchStats:
    """The forward passes of one batch size: each phase counts the passes and sums their time."""

    batch_size: int
    compute_input: Duration = Duration()
    compute_infer: Duration = Duration()
    compute_output: Duration = Duration()

    def plus(self, times: ComputeTimes) -> BatchStats:
        return BatchStats(
            self.batch_size,
            self.compute_input.plus(times.input_ns),
            self.compute_infer.plus(times.infer_ns),
            self.compute_output.plus(times.output_ns),
        )


@dataclass(frozen=True)
class StatsSnapshot:
    """The statistics of one model at one moment.

    ``last_inference_ms``: wall-clock milliseconds since the Unix epoch of the last forward pass (0:
    none yet). ``batches``: one entry per batch size seen, smallest first.
    """

    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = Duration()
    fail: Duration = Duration()
    queue: Duration = Duration()
    compute_input: Duration = Duration()
    compute_infer: Duration = Duration()
    compute_output: Duration = Duration()
    batches: tuple[BatchStats, ...] = ()


def ms_to_ns(ms: float) -> int:
    """Milliseconds (float) as whole nanoseconds (negative values count as 0)."""
    return max(0, round(ms * 1_000_000))


class ModelStats:
    """The counters of one model. Thread-safe: instance threads and the event loop both record.

    ``wall``: the wall clock in seconds (for ``last_inference``; tests inject a fixed one).
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._state = StatsSnapshot()
        self._batches: dict[int, BatchStats] = {}

    def record_execution(self, batch_size: int, times: ComputeTimes) -> None:
        """One forward pass of ``batch_size`` images."""
        now_ms = int(self._wall() * 1000)
        with self._lock:
            state = self._state
            self._state = _replace(
                state,
                last_inference_ms=max(state.last_inference_ms, now_ms),
                inference_count=state.inference_count + batch_size,
                execution_count=state.execution_count + 1,
            )
            batch = self._batches.get(batch_size) or BatchStats(batch_size)
            self._batches[batch_size] = batch.plus(times)

    def record_success(self, request_ns: int, queue_ns: int, times: ComputeTimes) -> None:
        """A request answered after ``request_ns``, of which ``queue_ns`` waiting for its batch, with
        the compute ``times`` of its forward pass."""
        with self._lock:
            state = self._state
            self._state = _replace(
                state,
                success=state.success.plus(request_ns),
                queue=state.queue.plus(queue_ns),
                compute_input=state.compute_input.plus(times.input_ns),
                compute_infer=state.compute_infer.plus(times.infer_ns),
                compute_output=state.compute_output.plus(times.output_ns),
            )

    def record_failure(self, request_ns: int) -> None:
        """A request that failed after ``request_ns``."""
        with self._lock:
            self._state = _replace(self._state, fail=self._state.fail.plus(request_ns))

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            batches = tuple(self._batches[size] for size in sorted(self._batches))
            return _replace(self._state, batches=batches)


@dataclass
class StatsRegistry:
    """The :class:`ModelStats` of every model by name, made on first use (thread-safe)."""

    wall: Callable[[], float] = time.time
    _models: dict[str, ModelStats] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, name: str) -> ModelStats:
        """The counters of ``name`` (new, all zero, the first time)."""
        stats = self._models.get(name)
        if stats is None:
            with self._lock:
                stats = self._models.setdefault(name, ModelStats(self.wall))
        return stats

    def snapshot(self, name: str) -> StatsSnapshot:
        """The statistics of ``name`` (all zero for a model never used)."""
        stats = self._models.get(name)
        return stats.snapshot() if stats is not None else StatsSnapshot()


def record_request(stats: ModelStats, timings: Sequence[Timings]) -> None:
    """Record a successful request whose images have these ``timings``: its duration is their
    ``total``; its queue and compute times are the longest of its images' (they share forward passes)."""
    if not timings:
        return
    stats.record_success(
        ms_to_ns(max(t.total_ms for t in timings)),
        ms_to_ns(max(t.queue_ms for t in timings)),
        ComputeTimes.from_ms(
            max(t.preprocess_ms for t in timings),
            max(t.inference_ms for t in timings),
            max(t.postprocess_ms for t in timings),
        ),
    )
