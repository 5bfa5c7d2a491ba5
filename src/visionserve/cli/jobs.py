"""``visionserve jobs submit|status|list|cancel|results``: jobs on a running server, from the shell.

Talks HTTP to ``--server`` (``VISIONSERVE_URL``, default ``http://127.0.0.1:8000``) with the API key
of ``--api-key`` (``VISIONSERVE_API_KEY``). ``submit`` streams the images one file at a time, so a
folder of thousands of photos is never held in memory, and ``--wait`` shows a progress bar.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import httpx
from tqdm import tqdm

from visionserve.cli.common import CONF
from visionserve.cli.detect import expand_paths

_MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
_ENDED = {"succeeded", "failed", "cancelled"}


class JobsClient:
    """The few requests the commands make; HTTP and network errors become :class:`click.ClickException`."""

    def __init__(self, server: str, api_key: str | None, timeout: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.server = server.rstrip("/")
        self._client = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.server}: {exc}") from exc
        if response.is_error:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise click.ClickException(f"HTTP {response.status_code}: {message}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        document: dict[str, Any] = self.request(method, path, **kwargs).json()
        return document

    def close(self) -> None:
        self._client.close()


def multipart(fields: Sequence[tuple[str, str]], files: Sequence[Path], boundary: str) -> Iterator[bytes]:
    """A ``multipart/form-data`` body: text ``fields``, then each file as an ``image`` part, read
    only when its turn comes."""
    for name, value in fields:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for path in files:
        media = _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        filename = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        yield f"{head}Content-Type: {media}\r\n\r\n".encode()
        yield path.read_bytes()
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def print_summary(job: dict[str, Any]) -> None:
    progress = job["progress"]
    click.echo(
        f"{job['id']}  {job['state']:<9}  {progress['finished']}/{progress['total']} "
        f"(done {progress['done']}, failed {progress['failed']})  model {job['model']}  created {job['created_at']}"
    )
    for error in job.get("errors", []):
        click.echo(f"  item {error['index']} ({error['source']}): {error['error']}")


def wait_with_bar(client: JobsClient, job_id: str, interval: float) -> dict[str, Any]:
    """Poll until the job ends, with a progress bar on stderr; the final document."""
    job = client.json("GET", f"/v1/jobs/{job_id}")
    with tqdm(total=job["progress"]["total"], unit="img", file=sys.stderr) as bar:
        while True:
            bar.update(job["progress"]["finished"] - bar.n)
            if job["state"] in _ENDED:
                return job
            time.sleep(interval)
            job = client.json("GET", f"/v1/jobs/{job_id}")


@click.group()
@click.option(
    "--server",
    default="http://127.0.0.1:8000",
    envvar="VISIONSERVE_URL",
    show_envvar=True,
    show_default=True,
    help="The visionserve server.",
)
@click.option("--api-key", envvar="VISIONSERVE_API_KEY", show_envvar=True, help="API key, when the server wants one.")
@click.pass_context
def jobs(ctx: click.Context, server: str, api_key: str | None) -> None:
    """Submit and follow jobs on a visionserve server."""
    client = JobsClient(server, api_key)
    ctx.call_on_close(client.close)
    ctx.obj = client


@jobs.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--url", "urls", multiple=True, help="An image URL (repeatable; the server must allow its host).")
@click.option("--model", help="Model name (default: the server's default model).")
@click.option("--conf", type=CONF, help="Minimum confidence, or best (the model's per-class thresholds).")
@click.option("--iou", type=click.FloatRange(0, 1), help="NMS IoU threshold.")
@click.option("--classes", help="Only these classes: comma-separated names or ids.")
@click.option("--max-det", type=click.IntRange(min=1), help="At most this many detections per image.")
@click.option("--top-k", type=click.IntRange(min=1), help="Classify models: this many classes per image.")
@click.option(
    "--mask-format",
    type=click.Choice(["rle", "polygon", "none"]),
    help="Segment models: masks in the results as COCO RLE (default), polygons, or not at all.",
)
@click.option("--crops", is_flag=True, help="Keep a crop of every detection (box models).")
@click.option("--annotate", is_flag=True, help="Keep an annotated copy of every image.")
@click.option("--webhook-url", help="POSTed the signed job summary when the job ends.")
@click.option("--wait/--no-wait", default=False, help="Follow the job with a progress bar until it ends.")
@click.option("--interval", type=click.FloatRange(0.05), default=0.5, show_default=True, help="Seconds between polls.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
def submit(
    client: JobsClient,
    /,
    paths: tuple[Path, ...],
    urls: tuple[str, ...],
    wait: bool,
    interval: float,
    as_json: bool,
    **options: Any,
) -> None:
    """Submit images (files or folders) and/or --url image URLs as one job; prints the job id."""
    files = expand_paths(paths)
    if not files and not urls:
        raise click.UsageError("give image files, folders or --url")
    fields = [
        (name, str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in options.items()
        if value not in (None, False)
    ]
    fields += [("url", url) for url in urls]
    boundary = uuid.uuid4().hex
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    job = client.json("POST", "/v1/jobs", content=multipart(fields, files, boundary), headers=headers)
    if not wait:
        click.echo(json.dumps(job, indent=2) if as_json else job["id"])
        return
    click.echo(f"job {job['id']}: {job['progress']['total']} images", err=True)
    job = wait_with_bar(client, job["id"], interval)
    click.echo(json.dumps(job, indent=2) if as_json else "", nl=as_json)
    if not as_json:
        print_summary(job)
    if job["state"] != "succeeded":
        sys.exit(1)


@jobs.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole document (with results) as JSON.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@click.pass_obj
def status(client: JobsClient, job_id: str, as_json: bool, wait: bool) -> None:
    """State and progress of a job (and its per-item errors)."""
    job = wait_with_bar(client, job_id, 0.5) if wait else client.json("GET", f"/v1/jobs/{job_id}")
    if as_json:
        click.echo(json.dumps(job, indent=2))
    else:
        print_summary(job)


@jobs.command("list")
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@click.option("--model")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_jobs(client: JobsClient, state: str | None, model: str | None, limit: int, offset: int, as_json: bool) -> None:
    """Jobs, newest first."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params |= {k: v for k, v in (("state", state), ("model", model)) if v}
    page = client.json("GET", "/v1/jobs", params=params)
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    for job in page["jobs"]:
        print_summary(job)
    click.echo(f"{len(page['jobs'])} of {page['total']} jobs", err=True)


@jobs.command()
@click.argument("job_id")
@click.pass_obj
def cancel(client: JobsClient, job_id: str) -> None:
    """Cancel a queued or running job."""
    print_summary(client.json("DELETE", f"/v1/jobs/{job_id}"))


@jobs.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=click.Choice(["json", "coco"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.pass_obj
def results(client: JobsClient, job_id: str, fmt: str, output: Path | None) -> None:
    """Every result of a job as one JSON document (native, or COCO with --format coco); native
    results are fetched a page at a time and joined."""
    if fmt == "coco":
        body = client.request("GET", f"/v1/jobs/{job_id}/results", params={"format": fmt}).content
    else:
        body = json.dumps(_all_results(client, job_id)).encode()
    if output is None:
        click.echo(body.decode())
    else:
        output.write_bytes(body)


def _all_results(client: JobsClient, job_id: str) -> dict[str, Any]:
    """``{"job", "items"}`` with the items of every page of ``/v1/jobs/{id}/results``."""
    document = client.json("GET", f"/v1/jobs/{job_id}/results", params={"format": "json"})
    items = list(document["items"])
    while document["page"]["next"] is not None:
        offset = document["page"]["offset"] + document["page"]["limit"]
        document = client.json("GET", f"/v1/jobs/{job_id}/results", params={"format": "json", "offset": offset})
        items.extend(document["items"])
    return {"job": document["job"], "items": items}
