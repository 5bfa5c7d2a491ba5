"""Model statistics in Triton's shape (``GET /v2/models[/{name}[/versions/{v}]]/stats``, gRPC
``ModelStatistics``).

The dicts use the field names of Triton's ``grpc_service.proto`` (``ModelStatistics``,
``InferStatistics``, ``InferBatchStatistics``, ``StatisticDuration``) with integers as numbers, as
Triton's HTTP endpoint writes them, so ``tritonclient``'s ``get_inference_statistics()`` reads them
as from Triton and ``google.protobuf.json_format.ParseDict`` turns the document into a
``ModelStatisticsResponse``. What each counter means: :mod:`visionserve.serving.model_stats`.
visionserve has no response cache: ``cache_hit`` and ``cache_miss`` stay zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from visionserve.serving.model_stats import BatchStats, Duration, StatsSnapshot


def _duration(duration: Duration) -> dict[str, int]:
    return {"count": duration.count, "ns": duration.ns}


def _batch(batch: BatchStats) -> dict[str, Any]:
    return {
        "batch_size": batch.batch_size,
        "compute_input": _duration(batch.compute_input),
        "compute_infer": _duration(batch.compute_infer),
        "compute_output": _duration(batch.compute_output),
    }


def model_statistics(name: str, version: str, stats: StatsSnapshot) -> dict[str, Any]:
    """One ``ModelStatistics`` entry: model ``name`` at ``version``."""
    return {
        "name": name,
        "version": version,
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {
            "success": _duration(stats.success),
            "fail": _duration(stats.fail),
            "queue": _duration(stats.queue),
            "compute_input": _duration(stats.compute_input),
            "compute_infer": _duration(stats.compute_infer),
            "compute_output": _duration(stats.compute_output),
            "cache_hit": _duration(Duration()),
            "cache_miss": _duration(Duration()),
        },
        "batch_stats": [_batch(batch) for batch in stats.batches],
        "memory_usage": [],
    }


def statistics_response(entries: Iterable[tuple[str, str, StatsSnapshot]]) -> dict[str, Any]:
    """The whole answer, ``{"model_stats": [...]}``, from (name, version, statistics) triples."""
    return {"model_stats": [model_statistics(name, version, stats) for name, version, stats in entries]}
