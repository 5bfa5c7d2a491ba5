"""``visionserve``: the command group; each sub-command lives in its own module."""

from __future__ import annotations

import logging

import click

from visionserve import __version__
from visionserve.cli.bench import bench
from visionserve.cli.detect import detect
from visionserve.cli.evaluate import evaluate
from visionserve.cli.jobs import jobs
from visionserve.cli.models import models
from visionserve.cli.predict import predict
from visionserve.cli.serve import serve
from visionserve.cli.worker import db, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="visionserve")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
def main(verbose: bool) -> None:
    """visionserve: serve trained vision models (detect from the command line, serve over HTTP)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


main.add_command(detect)
main.add_command(predict)
main.add_command(evaluate)
main.add_command(models)
main.add_command(serve)
main.add_command(worker)
main.add_command(db)
main.add_command(jobs)
main.add_command(bench)
