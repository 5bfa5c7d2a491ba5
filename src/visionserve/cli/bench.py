"""``visionserve bench``: load-test a running server (``--url``) or a model in this process."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click

from visionserve import __version__
from visionserve.bench.answers import Tolerance
from visionserve.bench.remote import Target
from visionserve.bench.report import Row, short_step_notes, table, write_csv, write_json
from visionserve.bench.sweep import Plan, load_images, run_inprocess, run_server
from visionserve.bench.wire import WireProtocol
from visionserve.cli.common import models_dir_option, open_repository, reports_errors
from visionserve.cli.detect import expand_paths

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}


def parse_duration(_ctx: Any, _param: Any, value: str) -> float:
    """``10s``, ``500ms``, ``1m`` or a plain number of seconds, as seconds."""
    match = _DURATION.match(value)
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration such as 10s, 500ms or 1m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_levels(_ctx: Any, _param: Any, value: str) -> tuple[int, ...]:
    """``1,2,4`` as whole numbers of at least 1."""
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of whole numbers") from None
    if not levels or min(levels) < 1:
        raise click.BadParameter(f"{value!r}: give whole numbers of at least 1, e.g. 1,2,4")
    return levels


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--images",
    "image_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Image files or folders to send (repeatable; default: the bundled sample photos).",
)
@click.option("--url", envvar="VISIONSERVE_URL", show_envvar=True, help="Load this running server.")
@click.option("--api-key", envvar="VISIONSERVE_API_KEY", show_envvar=True, help="With --url: the server's API key.")
@click.option(
    "--protocol",
    type=click.Choice([p.value for p in WireProtocol]),
    default="native",
    show_default=True,
    help="With --url: the interface to load.",
)
@click.option("--model", "model_name", help="Model name (default: the server's or the repository's default).")
@models_dir_option
@click.option(
    "--concurrency",
    default="1,2,4,8",
    show_default=True,
    callback=parse_levels,
    help="Comma-separated numbers of clients each sending back to back.",
)
@click.option(
    "--batch",
    default="1",
    show_default=True,
    callback=parse_levels,
    help="In-process only: comma-separated images per forward pass.",
)
@click.option("--duration", default="10s", show_default=True, callback=parse_duration, help="Measured time per step.")
@click.option("--warmup", default="2s", show_default=True, callback=parse_duration, help="Unmeasured time first.")
@click.option("--model-alone", is_flag=True, help="With --url: also measure the model in this process, no server.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results here.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the results here.")
@click.option(
    "--box-tolerance",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Pixels a box corner may move from the single-request answer.",
)
@click.option(
    "--score-tolerance",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="How far a score may move from the single-request answer.",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="Seconds per request.")
@reports_errors
def bench(paths: tuple[Path, ...], image_paths: tuple[Path, ...], **options: Any) -> None:  # fmt: skip
    """Measure images/s and latency over a sweep of concurrency levels, checking every answer."""
    url, batches = options["url"], options["batch"]
    if url is None and (options["model_alone"] or options["protocol"] != "native"):
        raise click.UsageError("--model-alone and --protocol need --url")
    if url is not None and batches != (1,):
        raise click.UsageError("--batch is for in-process runs: a server batches requests itself")
    files = expand_paths(paths + image_paths)
    if (paths or image_paths) and not files:
        raise click.UsageError("no image files (.jpg .jpeg .png .webp .bmp .tif .tiff) in the folders given")
    images = load_images(files)
    tolerance = Tolerance(options["box_tolerance"], options["score_tolerance"])
    plan = Plan(options["concurrency"], batches, options["duration"], options["warmup"], tolerance)
    head: dict[str, Any] = {"visionserve": __version__, "cores": os.cpu_count(), "duration_s": plan.duration,
                            "warmup_s": plan.warmup, "images": [i.name for i in images]}  # fmt: skip
    if url is None:
        spec = open_repository(options["models_dir"]).resolve(options["model_name"])
        head.update(mode="in-process", model=spec.name)
        click.echo(f"in-process {spec.name}: {len(images)} image(s), {_steps(plan)}", err=True)
        rows = run_inprocess(spec, images, plan)
        notes: list[str] = []
    else:
        alone = (
            open_repository(options["models_dir"]).resolve(options["model_name"]) if options["model_alone"] else None
        )
        target = Target(url, WireProtocol(options["protocol"]), options["model_name"], options["api_key"],
                        options["timeout"])  # fmt: skip
        click.echo(f"{url} ({target.protocol}): {len(images)} image(s), {_steps(plan)}", err=True)
        run = run_server(target, images, plan, alone)
        rows, notes = run.rows, run.notes
        head.update(mode="server", url=url, protocol=target.protocol.value, model=run.model)
    _emit(rows, notes, head, options)


def _steps(plan: Plan) -> str:
    return f"{plan.warmup:g} s warm-up + {plan.duration:g} s per step"


def _emit(rows: list[Row], notes: list[str], head: dict[str, Any], options: dict[str, Any]) -> None:
    notes = [*notes, *short_step_notes(rows)]
    click.echo(table(rows))
    click.echo(
        "cpu: CPU seconds per second of this process (the load generator; in-process rows: the model)."
        f" {head['cores']} cores."
    )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if options["json_path"] is not None:
        write_json(options["json_path"], {**head, "notes": notes}, rows)
    if options["csv_path"] is not None:
        write_csv(options["csv_path"], rows)
