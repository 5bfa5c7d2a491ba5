"""The bench's results: a table for people, JSON and CSV for machines.

A :class:`Row` is one measured step. Rows of a server are compared with the model-alone row of
the same concurrency when the run has one: ``throughput_ratio`` is the server's images/s over the
model alone's and ``p50_ratio`` the server's median latency over the model alone's (at
concurrency 1, the cost of a request's trip through the server).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionserve.bench.loop import StepResult

MODEL_ALONE = "model alone"

_HEADER = (
    f"{'target':<20} {'conc':>4} {'batch':>5} {'img/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    f" {'errors':>6} {'cpu':>5} {'÷alone img/s':>12} {'÷alone p50':>10}"
)


@dataclass(frozen=True)
class Row:
    """One step: ``target`` names what was measured (``server native``, ``model alone``, ...)."""

    target: str
    step: StepResult
    throughput_ratio: float | None = None
    p50_ratio: float | None = None

    def record(self) -> dict[str, Any]:
        """The row's figures as a flat JSON-able mapping (also the CSV columns)."""
        s = self.step
        return {
            "target": self.target,
            "concurrency": s.concurrency,
            "batch": s.images_per_call,
            "seconds": round(s.seconds, 3),
            "requests": s.calls,
            "images_per_s": _round(s.images_per_s),
            "p50_ms": _round(s.percentile_ms(50)),
            "p95_ms": _round(s.percentile_ms(95)),
            "p99_ms": _round(s.percentile_ms(99)),
            "errors": s.error_count,
            "error_kinds": dict(sorted(s.errors.items())),
            "cpu_cores": _round(s.cpu_cores),
            "throughput_ratio": _round(self.throughput_ratio),
            "p50_ratio": _round(self.p50_ratio),
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def with_ratios(rows: Sequence[Row]) -> list[Row]:
    """``rows`` with the ratios of every non-model-alone row to the model-alone row of its concurrency."""
    alone = {r.step.concurrency: r.step for r in rows if r.target == MODEL_ALONE and r.step.images_per_call == 1}
    result = []
    for row in rows:
        base = alone.get(row.step.concurrency)
        if row.target == MODEL_ALONE or base is None:
            result.append(row)
            continue
        throughput = row.step.images_per_s / base.images_per_s if base.images_per_s > 0 else None
        p50 = row.step.percentile_ms(50) / base.percentile_ms(50) if base.latencies else None
        result.append(Row(row.target, row.step, throughput, p50))
    return result


def short_step_notes(rows: Sequence[Row], fewest: int = 10) -> list[str]:
    """A note for each step that counted fewer than ``fewest`` calls (its percentiles mean little)."""
    return [
        f"{r.target} at c={r.step.concurrency} b={r.step.images_per_call} counted {r.step.calls} call(s):"
        " use a longer --duration for steadier figures"
        for r in rows
        if r.step.calls < fewest
    ]


def _ratio(value: float | None, width: int) -> str:
    return f"{'':>{width}}" if value is None or math.isnan(value) else f"{value:>{width - 1}.2f}x"


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table, with the kinds of errors listed under it."""
    lines = [_HEADER]
    for row in rows:
        s = row.step
        line = (
            f"{row.target:<20} {s.concurrency:>4} {s.images_per_call:>5} {s.images_per_s:>8.1f}"
            f" {s.percentile_ms(50):>8.1f} {s.percentile_ms(95):>8.1f} {s.percentile_ms(99):>8.1f}"
            f" {s.error_count:>6} {s.cpu_cores:>5.2f} {_ratio(row.throughput_ratio, 12)} {_ratio(row.p50_ratio, 10)}"
        )
        lines.append(line.rstrip())
    for row in rows:
        if row.step.errors:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(row.step.errors.items()))
            lines.append(f"errors of {row.target} at c={row.step.concurrency} b={row.step.images_per_call}: {kinds}")
    return "\n".join(lines)


def write_json(path: Path, head: dict[str, Any], rows: Sequence[Row]) -> None:
    """``head`` (what was measured, how) and every row's :meth:`Row.record` as ``steps``."""
    path.write_text(json.dumps({**head, "steps": [r.record() for r in rows]}, indent=2) + "\n", encoding="utf-8")


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    """One line per row; ``error_kinds`` as ``kind=count`` pairs separated by ``;``."""
    buffer = io.StringIO()
    records = [r.record() for r in rows]
    columns = list(records[0]) if records else list(Row.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        kinds = ";".join(f"{k}={v}" for k, v in record["error_kinds"].items())
        writer.writerow({**record, "error_kinds": kinds})
    path.write_text(buffer.getvalue(), encoding="utf-8")
