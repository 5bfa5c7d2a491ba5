"""``visionserve models list|info``: what the model repository holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from visionserve.cli.common import models_dir_option, open_repository, reports_errors
from visionserve.errors import VisionServeError
from visionserve.models.keypoints import keypoints_document
from visionserve.models.loading import load_model, spec_labels
from visionserve.models.spec import ModelSpec


def describe(spec: ModelSpec, check_load: bool) -> dict[str, Any]:
    """A JSON-able summary of ``spec``; with ``check_load`` it also tries to load the model."""
    info: dict[str, Any] = {
        "name": spec.name,
        "version": spec.version,
        "task": spec.task.value,
        "backend": spec.backend.value,
        "input": [spec.input.width, spec.input.height] if spec.input else None,
        "resize": spec.input.resize.value if spec.input else None,
        "decoder": str(spec.decoder.layout) if spec.decoder else None,
        "thresholds": spec.thresholds.model_dump(),
        "keypoints": keypoints_document(spec),
    }
    try:
        info["labels"] = spec_labels(spec).as_dict()
    except VisionServeError as exc:
        info["labels"] = {}
        info["error"] = str(exc)
    if check_load and "error" not in info:
        try:
            load_model(spec).close()
            info["loads"] = True
        except VisionServeError as exc:
            info["loads"] = False
            info["error"] = str(exc)
    return info


@click.group()
def models() -> None:
    """List and inspect the models of the repository."""


@models.command("list")
@models_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True, help="Also load each model to see that it loads.")
@reports_errors
def list_models(models_dir: Path | None, as_json: bool, check: bool) -> None:
    """One line per model: name, task, backend, input size, labels, and load state with --check."""
    repo = open_repository(models_dir)
    rows = [describe(repo.specs[name], check) for name in repo.names()]
    broken = [{"name": name, "error": error} for name, error in sorted(repo.broken.items())]
    if as_json:
        click.echo(json.dumps({"models": rows, "invalid": broken}, indent=2))
        return
    click.echo(f"{'NAME':28} {'TASK':7} {'BACKEND':11} {'INPUT':9} {'LABELS':>6}  STATE")
    for row in rows:
        size = "x".join(map(str, row["input"])) if row["input"] else "-"
        state = "" if "loads" not in row else "loads" if row["loads"] else f"FAILS: {row.get('error', '')}"
        click.echo(f"{row['name']:28} {row['task']:7} {row['backend']:11} {size:9} {len(row['labels']):>6}  {state}")
    for item in broken:
        click.echo(f"{item['name']:28} INVALID: {item['error']}")


@models.command("info")
@click.argument("name")
@models_dir_option
@reports_errors
def model_info(name: str, models_dir: Path | None) -> None:
    """Everything about one model (name, or path to a model.yaml or model file), as JSON."""
    spec = open_repository(models_dir).resolve(name)
    info = describe(spec, check_load=True)
    info["spec"] = json.loads(spec.model_dump_json(exclude={"labels"}))
    click.echo(json.dumps(info, indent=2))
