"""Which models are served, in which state, with their instances and batchers.

Each model of the repository has a state (:class:`ModelState`). Loading opens its instances (each
in its own thread), warms each up with one forward pass (admitted by the thread governor like any
other), and starts its batcher; unloading stops the
batcher (queued requests still run) and closes the instances. Requests reach a model only while it
is ``loaded``; otherwise :class:`~visionserve.errors.ModelNotReadyError` says why, except for a
model that loads *on demand* (not preloaded, see :mod:`visionserve.models.preload`): its first
request loads it (concurrent first requests share that one load) until it is unloaded explicitly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from visionserve.batching.batcher import Batcher, Clock, Priority
from visionserve.batching.policy import BatchPolicy
from visionserve.errors import InputError, ModelLoadError, ModelNotReadyError, VisionServeError
from visionserve.models.labels import Labels
from visionserve.models.loading import load_model, spec_labels
from visionserve.models.repository import ModelRepository, unknown_model
from visionserve.models.spec import BackendKind, ModelSpec
from visionserve.pipeline import Predictor
from visionserve.serving.instances import BatchItem, ItemResult, ModelInstance
from visionserve.serving.model_stats import ComputeTimes, ModelStats, StatsRegistry
from visionserve.serving.results import ModelState, ModelStatus
from visionserve.serving.threads import ThreadGovernor

logger = logging.getLogger(__name__)


class ServingObserver(Protocol):
    """Told about every forward pass (the metrics implement it)."""

    def on_batch(self, model: str, size: int, inference_ms: float) -> None: ...


def uses_opencv_threads(spec: ModelSpec) -> bool:
    """Whether the model's forward pass runs on OpenCV's CPU thread pool."""
    return spec.backend is BackendKind.OPENCV_DNN and spec.runtime.opencv_target == "cpu"


def instance_count(spec: ModelSpec, override: int | None, cores: int) -> int:
    """Instances to run: the override, else ``instances`` from the model.yaml when it sets it, else
    one per core for OpenCV DNN models on the CPU (the thread governor lets a lone request use every
    core) and one for the others."""
    if override is not None:
        return override
    if "instances" in spec.model_fields_set or not uses_opencv_threads(spec):
        return spec.instances
    return cores


def session_threads(spec: ModelSpec, instances: int, cores: int) -> ModelSpec:
    """``spec`` with the thread count that each of its ``instances`` sessions opens with.

    A LiteRT interpreter fixes its thread count when it is built, so the governor cannot give a
    lone request every core and loaded instances one each, as it does for OpenCV. Each instance
    gets an equal share of the cores instead (``cores // instances``, at least 1): one instance
    (the default for non-OpenCV backends) gets every core, and instances running at once never ask
    for more threads than there are cores. ``runtime.threads`` set in the model.yaml wins; other
    backends are returned as they are.
    """
    if spec.backend is not BackendKind.LITERT or spec.runtime.threads:
        return spec
    runtime = spec.runtime.model_copy(update={"threads": max(1, cores // instances)})
    return spec.model_copy(update={"runtime": runtime})


class ServedModel:
    """A loaded model: its instances behind a batcher, admitted to the CPU by the governor."""

    def __init__(
        self,
        spec: ModelSpec,
        labels: Labels,
        instances: list[ModelInstance],
        governor: ThreadGovernor,
        observer: ServingObserver | None = None,
        clock: Clock | None = None,
        on_failure: Callable[[ModelNotReadyError], None] | None = None,
        stats: ModelStats | None = None,
    ) -> None:
        self.spec = spec
        self.stats = stats or ModelStats()
        self.labels = labels
        self.instances = instances
        self._governor = governor
        self._observer = observer
        self._uses_opencv = uses_opencv_threads(spec)
        self._free: asyncio.Queue[ModelInstance] = asyncio.Queue()
        for instance in instances:
            self._free.put_nowait(instance)
        policy = BatchPolicy.from_spec(spec.batching)
        self.batcher: Batcher[BatchItem, ItemResult | InputError] = Batcher(
            policy,
            self._run_batch,
            clock=clock,
            capacity=len(instances),
            name=f"model {spec.name!r}",
            on_failure=on_failure,
        )
        self.batcher.start()

    def idle(self) -> bool:
        """Whether an item submitted now would start at once on an idle CPU: nothing queued, an
        instance free, and no forward pass running in the process."""
        return not self.batcher.depth and self.batcher.in_flight < len(self.instances) and not self._governor.running

    async def infer(self, items: Sequence[BatchItem], priority: Priority = Priority.HIGH) -> list[ItemResult]:
        """Queue ``items`` together at ``priority`` and wait for their results (in order). Raises the
        :class:`InputError` of the first item whose bytes did not decode."""
        futures = self.batcher.submit_many(items, priority)
        try:
            results = [await futures[0]] if len(futures) == 1 else list(await asyncio.gather(*futures))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for result in results:
            if isinstance(result, InputError):
                raise result
        return [result for result in results if isinstance(result, ItemResult)]

    async def _run_batch(self, items: list[BatchItem]) -> list[ItemResult | InputError]:
        instance = self._free.get_nowait()  # the batcher runs at most one batch per instance
        try:
            async with self._governor.lane(self._uses_opencv, backlog=lambda: self.batcher.depth > 0):
                results = await instance.run(items)
        finally:
            self._free.put_nowait(instance)
        passes = {id(r.timings): r for r in results if isinstance(r, ItemResult)}  # one per forward pass
        for result in passes.values():
            stage = result.timings
            times = ComputeTimes.from_ms(stage.preprocess_ms, stage.inference_ms, stage.postprocess_ms)
            self.stats.record_execution(result.batch_size, times)
            if self._observer is not None:
                self._observer.on_batch(self.spec.name, result.batch_size, stage.inference_ms)
        return results

    async def close(self) -> None:
        """Run what is queued, then close every instance."""
        await self.batcher.close()
        await asyncio.gather(*(instance.close() for instance in self.instances), return_exceptions=True)


@dataclass
class _Entry:
    spec: ModelSpec | None
    labels: Labels | None
    state: ModelState
    error: str | None = None
    served: ServedModel | None = None
    lock: asyncio.Lock | None = None
    on_demand: bool = False
    loading: asyncio.Task[ModelStatus] | None = None


class ModelManager:
    """The state of every model of ``repository``, and their loading and unloading.

    Args:
        repository: the specs to serve (broken ``model.yaml`` files are listed as failed).
        governor: shared by every model of the process.
        instances: overrides every model's instance count.
        load: builds one predictor from a spec (default :func:`load_model`).
        stats: the statistics of every model (its forward passes are recorded there).
        preload: the models that :meth:`load_all` loads (default: every model); the others load
            on demand, on their first request through :meth:`acquire`.
    """

    def __init__(
        self,
        repository: ModelRepository,
        governor: ThreadGovernor,
        *,
        instances: int | None = None,
        observer: ServingObserver | None = None,
        load: Callable[[ModelSpec], Predictor] = load_model,
        clock: Clock | None = None,
        preload: Collection[str] | None = None,
        stats: StatsRegistry | None = None,
    ) -> None:
        self.repository = repository
        self.stats = stats or StatsRegistry()
        self._governor = governor
        self._instances = instances
        self._observer = observer
        self._load = load
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        for name in repository.names():
            self._entries[name] = self._entry(repository.specs[name])
        for name, error in repository.broken.items():
            self._entries.setdefault(name, _Entry(None, None, ModelState.FAILED, error))
        for name, entry in self._entries.items():
            entry.on_demand = preload is not None and name not in preload and entry.spec is not None

    @staticmethod
    def _entry(spec: ModelSpec) -> _Entry:
        try:
            return _Entry(spec, spec_labels(spec), ModelState.UNLOADED)
        except VisionServeError as exc:
            return _Entry(spec, None, ModelState.FAILED, str(exc))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def _get(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise unknown_model(name, self.names())
        return entry

    def ensure_known(self, name: str) -> None:
        """Raises :class:`ModelNotFoundError` unless ``name`` is a model of the repository (a dict
        look-up: no snapshot, no queue walk)."""
        self._get(name)

    def status(self, name: str) -> ModelStatus:
        """The snapshot of ``name``; raises :class:`ModelNotFoundError`."""
        entry = self._get(name)
        count = len(entry.served.instances) if entry.served else 0
        if entry.spec is not None and not count:
            count = instance_count(entry.spec, self._instances, self._governor.cores)
        depth = entry.served.batcher.depth if entry.served else 0
        on_demand = entry.on_demand and entry.state in {ModelState.UNLOADED, ModelState.LOADING}
        return ModelStatus(name, entry.state, entry.spec, entry.labels, count, depth, entry.error, on_demand)

    def statuses(self) -> list[ModelStatus]:
        return [self.status(name) for name in self.names()]

    def served(self, name: str) -> ServedModel:
        """The loaded model ``name``; raises :class:`ModelNotFoundError` or :class:`ModelNotReadyError`."""
        entry = self._get(name)
        if entry.state is ModelState.LOADED and entry.served is not None:
            return entry.served
        reason = f": {entry.error}" if entry.error else ""
        raise ModelNotReadyError(f"model {name!r} is not available: it is {entry.state.value}{reason}")

    async def acquire(self, name: str) -> ServedModel:
        """The loaded model ``name``, loaded first when it loads on demand: concurrent first requests
        wait for one shared load, which a cancelled request does not cancel. Raises
        :class:`ModelNotFoundError` or :class:`ModelNotReadyError` (not loaded, or its load failed)."""
        entry = self._get(name)
        if entry.on_demand and entry.state in {ModelState.UNLOADED, ModelState.LOADING}:
            if entry.loading is None:
                entry.loading = asyncio.get_running_loop().create_task(self.load(name), name=f"load-{name}")
                entry.loading.add_done_callback(lambda task: self._loaded_on_demand(entry, task))
            try:
                await asyncio.shield(entry.loading)
            except VisionServeError as exc:
                raise ModelNotReadyError(f"model {name!r} failed to load on its first request: {exc}") from exc
        return self.served(name)

    @staticmethod
    def _loaded_on_demand(entry: _Entry, task: asyncio.Task[ModelStatus]) -> None:
        entry.loading = None
        if not task.cancelled():
            task.exception()  # retrieved here: the requests that waited for it may all be gone

    def spec(self, name: str) -> ModelSpec:
        """The spec of ``name`` (loaded or not); raises :class:`ModelNotFoundError` or, for a broken
        ``model.yaml``, :class:`ModelNotReadyError` with its validation error."""
        entry = self._get(name)
        if entry.spec is None:
            raise ModelNotReadyError(f"model {name!r} is not available: {entry.error}")
        return entry.spec

    def labels(self, name: str) -> Labels:
        entry = self._get(name)
        if entry.labels is None:
            raise ModelNotReadyError(f"model {name!r} is not available: {entry.error}")
        return entry.labels

    async def load(self, name: str) -> ModelStatus:
        """Load and warm up ``name`` (no-op when loaded). Raises :class:`ModelNotFoundError`,
        :class:`ModelNotReadyError` for a broken spec, or the load error (the state is then failed)."""
        entry = self._get(name)
        spec = self.spec(name)
        entry.lock = entry.lock or asyncio.Lock()
        async with entry.lock:
            if entry.state is ModelState.LOADED:
                return self.status(name)
            entry.state, entry.error = ModelState.LOADING, None
            started = time.perf_counter()
            try:
                entry.labels = entry.labels or spec_labels(spec)
                entry.served = await self._open(spec, entry.labels)
            except Exception as exc:
                entry.state, entry.error = ModelState.FAILED, str(exc)
                logger.error("model %s failed to load: %s", name, exc)
                if isinstance(exc, VisionServeError):
                    raise
                raise ModelLoadError(f"model {name!r} failed to load: {exc}") from exc
            entry.state = ModelState.LOADED
            logger.info(
                "model %s loaded: %d instance(s), warm in %.0f ms",
                name,
                len(entry.served.instances),
                (time.perf_counter() - started) * 1000,
            )
        return self.status(name)

    async def _open(self, spec: ModelSpec, labels: Labels) -> ServedModel:
        count = instance_count(spec, self._instances, self._governor.cores)
        threaded = session_threads(spec, count, self._governor.cores)
        opened = await asyncio.gather(
            *(ModelInstance.open(threaded, i, self._load) for i in range(count)), return_exceptions=True
        )
        instances = [item for item in opened if isinstance(item, ModelInstance)]
        failure = next((item for item in opened if isinstance(item, BaseException)), None)
        try:
            if failure is not None:
                raise failure
            uses_opencv = uses_opencv_threads(spec)
            for instance in instances:
                # A warm-up is a forward pass: hold a lane so the thread count never changes under it.
                async with self._governor.lane(uses_opencv, backlog=lambda: False):
                    await instance.warm_up()
        except BaseException:
            await asyncio.gather(*(instance.close() for instance in instances), return_exceptions=True)
            raise

        def failed(error: ModelNotReadyError) -> None:
            self._dispatcher_died(spec.name, error)

        stats = self.stats.model(spec.name)
        return ServedModel(spec, labels, instances, self._governor, self._observer, self._clock, failed, stats)

    def _dispatcher_died(self, name: str, error: ModelNotReadyError) -> None:
        """Mark ``name`` failed (``/v1/models`` and ``/readyz`` show why) and close its instances in
        the background; ``load`` brings it back."""
        entry = self._entries[name]
        served, entry.served = entry.served, None
        entry.state, entry.error = ModelState.FAILED, str(error)
        if served is not None:
            task = asyncio.get_running_loop().create_task(served.close(), name=f"close-{name}")
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    async def unload(self, name: str) -> ModelStatus:
        """Stop taking requests for ``name``, finish the queued ones, close its instances. A model
        that loaded on demand stays unloaded until :meth:`load` (requests get 503 meanwhile)."""
        entry = self._get(name)
        entry.on_demand = False
        entry.lock = entry.lock or asyncio.Lock()
        async with entry.lock:
            served = entry.served
            if served is None:
                if entry.state is not ModelState.FAILED:
                    entry.state = ModelState.UNLOADED
                return self.status(name)
            entry.state = ModelState.UNLOADING
            await served.close()
            entry.served, entry.state = None, ModelState.UNLOADED
            logger.info("model %s unloaded", name)
        return self.status(name)

    async def load_all(self) -> None:
        """Load every valid model that does not load on demand, one after the other; failures are
        logged and leave the model ``failed`` (the others still load)."""
        for name in self.names():
            if self._entries[name].state is ModelState.UNLOADED and not self._entries[name].on_demand:
                try:
                    await self.load(name)
                except VisionServeError:
                    continue

    async def close(self) -> None:
        """Unload every model (and finish closing those whose dispatcher died)."""
        for name in self.names():
            await self.unload(name)
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
