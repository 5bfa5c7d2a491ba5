"""Options and error handling shared by the sub-commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from visionserve.errors import InvalidParameterError, VisionServeError
from visionserve.models.repository import ModelRepository
from visionserve.pipeline import parse_conf

F = TypeVar("F", bound=Callable[..., Any])

models_dir_option = click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="VISIONSERVE_MODELS",
    show_envvar=True,
    help="Model repository folder (one sub-folder with a model.yaml per model).",
)


class ConfType(click.ParamType[Any]):
    """A confidence: a number between 0 and 1, or ``best`` (the model's saved per-class thresholds)."""

    name = "0..1|best"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return parse_conf(value)
        except InvalidParameterError as exc:
            self.fail(str(exc), param, ctx)


CONF = ConfType()


def image_inputs(command: F) -> F:
    """The arguments and options that ``detect`` and ``predict`` share: image paths, the model and its
    repository, and the thresholds (applied in the order click lists them in ``--help``)."""
    shared = [
        click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)),
        click.option("--model", "model_name", help="Model name in the repository, or path to a model.yaml or file."),
        models_dir_option,
        click.option("--conf", type=CONF, help="Minimum confidence (default: the model's), or best: per class."),
        click.option("--iou", type=click.FloatRange(0, 1), help="NMS IoU threshold (default: the model's)."),
        click.option("--classes", help="Only these classes: comma-separated names or ids, e.g. person,car."),
        click.option("--max-det", type=click.IntRange(min=1), help="At most this many detections per image."),
    ]
    for decorator in reversed(shared):
        command = decorator(command)
    return command


def open_repository(models_dir: Path | None) -> ModelRepository:
    return ModelRepository.scan(models_dir)


def reports_errors(fn: F) -> F:
    """Turn a :class:`VisionServeError` into a one-line message on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VisionServeError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
