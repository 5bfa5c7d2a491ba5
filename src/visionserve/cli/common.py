"""Options and error handling shared by the sub-commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from visionserve.errors import VisionServeError
from visionserve.models.repository import ModelRepository

F = TypeVar("F", bound=Callable[..., Any])

models_dir_option = click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="VISIONSERVE_MODELS",
    show_envvar=True,
    help="Model repository folder (one sub-folder with a model.yaml per model).",
)


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
