"""``visionserve serve``: run the HTTP server (uvicorn) on the models of the repository.

Every setting of :class:`~visionserve.settings.Settings` is a flag (``--max-body-bytes``), an
environment variable (``VISIONSERVE_MAX_BODY_BYTES``) and a key of the ``--config`` YAML file;
flags win over the environment, which wins over the file.

On SIGTERM (or Ctrl-C) the server drains: new requests get 503 and ``/readyz`` turns 503 while the
requests in flight finish; then it stops listening, unloads the models and exits with status 0.
Draining and uvicorn's own wait for open connections share ``shutdown_timeout`` seconds. A second
signal stops it at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

import click

from visionserve.cli.common import reports_errors
from visionserve.settings import ENV_PREFIX, LogLevel, Settings

logger = logging.getLogger(__name__)
#: Settings too structured for a flag: the YAML file (or a JSON environment variable) only.
FILE_ONLY = frozenset({"streams"})


def _option_type(annotation: Any) -> Any:
    kinds = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    kind = kinds[0]
    if kind is LogLevel:
        return click.Choice([level.value for level in LogLevel], case_sensitive=False)
    if kind in {int, float}:
        return kind
    if kind is Path:
        return click.Path(path_type=Path)
    return str


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One flag per field of :class:`Settings` (None when not given, so that lower sources apply)."""
    for name, info in reversed(list(Settings.model_fields.items())):
        if name in FILE_ONLY:
            continue
        flag = name.replace("_", "-")
        default = "none" if name == "api_keys" else info.default
        default_text = default.value if isinstance(default, LogLevel) else default
        text = f"{info.description} [env: {ENV_PREFIX}{name.upper()}; default: {default_text}]"
        if info.annotation is bool:
            option = click.option(f"--{flag}/--no-{flag}", name, default=None, help=text)
        else:
            option = click.option(f"--{flag}", name, type=_option_type(info.annotation), default=None, help=text)
        command = option(command)
    return command


def _quiet_signals() -> None:
    """After a graceful stop uvicorn re-raises the signal it caught; a no-op handler lets the
    process then exit with status 0 instead of dying of the signal."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)


def _configure_logging(level: LogLevel) -> None:
    logging.getLogger("visionserve").setLevel(level.value.upper())


def _draining_server(
    config: Any,
    drain: Callable[[float], Awaitable[object]],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """A ``uvicorn.Server`` whose first SIGTERM/SIGINT drains before it stops (see module doc).

    ``drain(timeout)`` waits up to ``timeout`` seconds for the requests in flight; uvicorn's own
    graceful wait (``config.timeout_graceful_shutdown``) then gets only what is left of ``timeout``
    (0 when draining used it all), so the whole stop takes ``timeout`` seconds, not twice that.
    ``clock``: monotonic seconds (tests inject a fake).
    """
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def __init__(self) -> None:
            super().__init__(config)
            self._loop: asyncio.AbstractEventLoop | None = None
            self._draining: asyncio.Task[None] | None = None

        async def serve(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
            if self._draining is not None or self._loop is None or not self.started:
                super().handle_exit(sig, frame)
                return
            logger.info("received %s: draining, then stopping", signal.Signals(sig).name)
            self._loop.call_soon_threadsafe(self._start_draining)

        def _start_draining(self) -> None:
            if self._draining is None and self._loop is not None:
                self._draining = self._loop.create_task(self._drain_then_exit())

        async def _drain_then_exit(self) -> None:
            deadline = clock() + timeout
            try:
                await drain(timeout)
            finally:
                # uvicorn hands this to asyncio.wait_for, which takes fractions of a second.
                self.config.timeout_graceful_shutdown = max(0.0, deadline - clock())  # type: ignore[assignment]
                self.should_exit = True

    return DrainingServer()


@click.command()
@settings_options
@reports_errors
def serve(**flags: Any) -> None:
    """Serve the models of the repository over HTTP (the default model is always there).

    Every option can also come from the environment (VISIONSERVE_<NAME>) or a YAML --config file.
    """
    import uvicorn

    from visionserve.api.app import create_app, drain
    from visionserve.api.connections import http_protocol
    from visionserve.models.preload import preload_names
    from visionserve.models.repository import ModelRepository
    from visionserve.serving.malloc import limit_malloc_arenas, trim_every

    settings = Settings.load(**flags)
    _configure_logging(settings.log_level)
    limit_malloc_arenas(settings.malloc_arena_max)  # before the server's threads exist
    trim_every(settings.malloc_trim_interval, threading.Event())  # a daemon thread, ends with the process
    repository = ModelRepository.scan(settings.models)
    preload_names(settings.preload, repository)  # unknown names stop the server here, before it binds
    for name, error in sorted(repository.broken.items()):
        logger.error("model %s is not valid and will not be served: %s", name, error)
    app = create_app(settings, repository)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),  # until a drain shortens it
        http=http_protocol(settings.header_timeout),
        timeout_keep_alive=math.ceil(settings.keep_alive_timeout),
        limit_concurrency=settings.max_connections,
        lifespan="on",
    )
    server = _draining_server(config, lambda timeout: drain(app, timeout), settings.shutdown_timeout)
    _quiet_signals()
    server.run()
    if not server.started:
        sys.exit(1)
