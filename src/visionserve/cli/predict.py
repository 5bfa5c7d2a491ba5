"""``visionserve predict``: any model (detect, segment, pose, classify) on image files, offline or
through a running server (``--url``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from visionserve.cli.common import image_inputs, open_repository, reports_errors
from visionserve.cli.detect import expand_paths, output_stems, write_image
from visionserve.client import Client, PredictionResult
from visionserve.core.images import load_image
from visionserve.core.prediction import Prediction
from visionserve.errors import AuthenticationError, RemoteError, VisionServeError
from visionserve.models.labels import Labels
from visionserve.models.loading import load_model
from visionserve.pipeline import PredictOptions, Predictor, check_conf, resolve_classes
from visionserve.render.annotators import RenderMode, annotators_for, render
from visionserve.render.json import prediction_to_json
from visionserve.render.mask_encoding import MaskFormat
from visionserve.types import BGRImage

_PROGRESS_FROM = 10  # show a progress bar when there are at least this many images

#: For each image: its JSON result, and the image, prediction and labels to draw (None on error).
Outcome = tuple[Path, dict[str, Any], tuple[BGRImage, Prediction, Labels] | None]


def _run_local(
    model: Predictor, paths: list[Path], options: PredictOptions, mask_format: MaskFormat
) -> Iterator[Outcome]:
    for path in tqdm(paths, file=sys.stderr, unit="img", disable=len(paths) < _PROGRESS_FROM):
        try:
            decoded = load_image(path)
            (prediction,) = model.infer([decoded.image], options).predictions
        except VisionServeError as exc:
            yield path, {"image": str(path), "error": str(exc)}, None
            continue
        size = (decoded.width, decoded.height)
        result = {"image": str(path), "width": size[0], "height": size[1]}
        result.update(prediction_to_json(prediction, model.labels, size, mask_format))
        yield path, result, (decoded.image, prediction, model.labels)


def result_labels(result: PredictionResult) -> Labels:
    """The class and keypoint names that the server gave for ``result``."""
    ids = (int(c) for c in result.prediction.class_id)
    return Labels(dict(zip(ids, result.labels, strict=True)), keypoints=result.keypoint_names)


def _run_remote(
    client: Client, paths: list[Path], ask: dict[str, Any], draw: bool, head: dict[str, Any]
) -> Iterator[Outcome]:
    """Like :func:`_run_local` through the server (``head`` gets the model, version and task it
    answered with); an unreachable server or a refused key stops the run (the error is raised)."""
    for path in paths:
        try:
            answer = client.predict(path, **ask)
        except (RemoteError, AuthenticationError):
            raise
        except VisionServeError as exc:
            yield path, {"image": str(path), "error": str(exc)}, None
            continue
        head.update(model=answer.model, version=answer.version, task=answer.task)
        labels, size = result_labels(answer), (answer.width, answer.height)
        result = {"image": str(path), "width": size[0], "height": size[1]}
        result.update(prediction_to_json(answer.prediction, labels, size, MaskFormat(ask["mask_format"])))
        yield path, result, ((load_image(path).image, answer.prediction, labels) if draw else None)


def _row_text(row: dict[str, Any]) -> str:
    """One line of the table: label, score, and box, mask and keypoints when present."""
    text = f"  {row['label']:<16} {row['score']:.3f}"
    if "box" in row:
        box = row["box"]
        text += f"  [{box['x1']:7.1f} {box['y1']:7.1f} {box['x2']:7.1f} {box['y2']:7.1f}]"
    if "polygons" in row:
        text += f"  mask: {len(row['polygons'])} part(s)"
    if "rle" in row:
        text += "  mask: rle"
    if "keypoints" in row:
        text += f"  {len(row['keypoints'])} keypoints"
    return text


def print_table(result: dict[str, Any]) -> None:
    """A human-readable summary of one image's result."""
    if "error" in result:
        click.echo(f"{result['image']}: error: {result['error']}")
        return
    rows = result.get("classes", result.get("detections", []))
    kind = "classes" if "classes" in result else "detections"
    click.echo(f"{result['image']} ({result['width']}x{result['height']}): {len(rows)} {kind}")
    for row in rows:
        click.echo(_row_text(row))


@click.command()
@image_inputs
@click.option("--top-k", type=click.IntRange(min=1), help="Classifiers: at most this many classes.")
@click.option(
    "--mask-format",
    type=click.Choice([m.value for m in MaskFormat]),
    default=MaskFormat.POLYGON.value,
    show_default=True,
    help="Masks in the JSON as polygons, COCO RLE, or none.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout (nothing else).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write annotated images here.")
@click.option(
    "--render",
    "render_mode",
    type=click.Choice([m.value for m in RenderMode]),
    default=RenderMode.BOXES_MASKS.value,
    show_default=True,
    help="With --out: what the images show.",
)
@click.option("--url", envvar="VISIONSERVE_URL", show_envvar=True, help="Predict on this running server instead.")
@click.option("--api-key", envvar="VISIONSERVE_API_KEY", show_envvar=True, help="With --url: the server's API key.")
@reports_errors
def predict(paths: tuple[Path, ...], model_name: str | None, models_dir: Path | None, **options: Any) -> None:
    """Predict with any model (detect, segment, pose, classify) on images (files or folders)."""
    files = expand_paths(paths)
    if options["url"] is not None:
        head: dict[str, Any] = {"model": model_name, "version": None, "task": None}
        ask = {k: options[k] for k in ("conf", "iou", "max_det", "top_k", "mask_format")}
        ask.update(model=model_name, classes=options["classes"].split(",") if options["classes"] else None)
        with Client(options["url"], options["api_key"]) as client:
            _report(head, _run_remote(client, files, ask, options["out"] is not None, head), files, options)
        return
    spec = open_repository(models_dir).resolve(model_name)
    check_conf(spec, options["conf"])
    model = load_model(spec)
    try:
        class_ids = resolve_classes(options["classes"].split(","), model.labels) if options["classes"] else None
        ask = {k: options[k] for k in ("conf", "iou", "max_det", "top_k")}
        mask_format = MaskFormat(options["mask_format"])
        outcomes = _run_local(model, files, PredictOptions(classes=class_ids, **ask), mask_format)
        _report({"model": spec.name, "version": spec.version, "task": spec.task.value}, outcomes, files, options)
    finally:
        model.close()


def _report(head: dict[str, Any], outcomes: Iterator[Outcome], files: list[Path], options: dict[str, Any]) -> None:
    """Print each result (table) or all of them (JSON, with ``head`` as it is once every image is
    done), write annotated images, exit 1 on errors."""
    results = []
    out: Path | None = options["out"]
    stems = output_stems(files)
    for path, result, drawing in outcomes:
        results.append(result)
        if out is not None and drawing is not None:
            image, prediction, labels = drawing
            out.mkdir(parents=True, exist_ok=True)
            drawn = render(image, prediction, annotators_for(labels, RenderMode(options["render_mode"])))
            write_image(out / f"{stems[path]}.jpg", drawn)
        if not options["as_json"]:
            print_table(result)
    if options["as_json"]:
        click.echo(json.dumps({**head, "results": results}, indent=2))
    if any("error" in r for r in results):
        sys.exit(1)
