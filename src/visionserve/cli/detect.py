"""``visionserve detect``: run a model on image files offline."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import click
import cv2
from tqdm import tqdm

from visionserve.cli.common import image_inputs, open_repository, reports_errors
from visionserve.cli.remote import RemoteOptions, run_remote
from visionserve.client import Client
from visionserve.core.images import load_image
from visionserve.core.prediction import boxes_of
from visionserve.errors import VisionServeError, WrongTaskError
from visionserve.models.labels import Labels
from visionserve.models.loading import load_model
from visionserve.models.spec import Task
from visionserve.pipeline import PredictOptions, Predictor, check_conf, resolve_classes
from visionserve.render.annotators import crops, default_annotators, render
from visionserve.render.json import detections_to_json

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
_PROGRESS_FROM = 10  # show a progress bar when there are at least this many images


def expand_paths(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given; folders as their image files (sorted, not recursive)."""
    result: list[Path] = []
    for path in paths:
        if path.is_dir():
            result.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            result.append(path)
    return result


def _run(model: Predictor, paths: list[Path], options: PredictOptions) -> Iterator[tuple[Path, dict[str, Any], Any]]:
    """For each path: its JSON result and the decoded image with detections (None on error)."""
    bar = tqdm(paths, file=sys.stderr, unit="img", disable=len(paths) < _PROGRESS_FROM)
    for path in bar:
        try:
            decoded = load_image(path)
            (prediction,) = model.infer([decoded.image], options).predictions
            found = boxes_of(prediction, model.spec.name)
        except VisionServeError as exc:
            yield path, {"image": str(path), "error": str(exc)}, None
            continue
        result = {
            "image": str(path),
            "width": decoded.width,
            "height": decoded.height,
            "detections": detections_to_json(found, model.labels),
        }
        yield path, result, (decoded.image, found)


def output_stems(files: list[Path]) -> dict[Path, str]:
    """A distinct output name per input: its stem, or ``stem_ext`` where stems collide (``x.jpg`` and
    ``x.png``), or ``NNNN_stem_ext`` where even that collides (``a/x.jpg`` and ``b/x.jpg``)."""
    by_stem = Counter(p.stem for p in files)
    named = {p: p.stem if by_stem[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in files}
    by_name = Counter(named.values())
    return {p: name if by_name[name] == 1 else f"{i:04d}_{name}" for i, (p, name) in enumerate(named.items())}


def write_image(path: Path, image: Any) -> None:
    """Write ``image`` to ``path`` (format from the suffix); a click error when it cannot."""
    if not cv2.imwrite(str(path), image):
        raise click.ClickException(f"cannot write {path}")


def _save(out: Path, stem: str, labels: Labels, image_and_found: Any, with_crops: bool) -> None:
    image, found = image_and_found
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / f"{stem}.jpg", render(image, found, default_annotators(labels)))
    if with_crops:
        ordered = found.sorted_by_confidence()
        for index, (crop, class_id) in enumerate(zip(crops(image, ordered), ordered.class_id, strict=True)):
            label = labels.name(int(class_id)).replace(" ", "_")
            write_image(out / f"{stem}_{index:03d}_{label}.jpg", crop)


def _print_table(result: dict[str, Any]) -> None:
    if "error" in result:
        click.echo(f"{result['image']}: error: {result['error']}")
        return
    detections = result["detections"]
    click.echo(f"{result['image']} ({result['width']}x{result['height']}): {len(detections)} detections")
    for d in detections:
        box = d["box"]
        click.echo(
            f"  {d['label']:<16} {d['score']:.3f}  "
            f"[{box['x1']:7.1f} {box['y1']:7.1f} {box['x2']:7.1f} {box['y2']:7.1f}]"
        )


@click.command()
@image_inputs
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout (nothing else).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write annotated images here.")
@click.option("--crops", "with_crops", is_flag=True, help="With --out: also write one crop per detection.")
@click.option("--url", envvar="VISIONSERVE_URL", show_envvar=True, help="Detect on this running server instead.")
@click.option("--api-key", envvar="VISIONSERVE_API_KEY", show_envvar=True, help="With --url: the server's API key.")
@reports_errors
def detect(
    paths: tuple[Path, ...],
    model_name: str | None,
    models_dir: Path | None,
    conf: float | Literal["best"] | None,
    iou: float | None,
    classes: str | None,
    max_det: int | None,
    as_json: bool,
    out: Path | None,
    with_crops: bool,
    url: str | None,
    api_key: str | None,
) -> None:
    """Detect objects in images (files or folders) with the default model or --model."""
    if with_crops and out is None:
        raise click.UsageError("--crops needs --out DIR")
    files = expand_paths(paths)
    if url is not None:
        names = classes.split(",") if classes else None
        _detect_remote(
            url, api_key, files, RemoteOptions(model_name, conf, iou, names, max_det), as_json, out, with_crops
        )
        return
    spec = open_repository(models_dir).resolve(model_name)
    if spec.task is Task.CLASSIFY:
        raise WrongTaskError(f"model {spec.name!r} classifies images and gives no boxes: use `visionserve predict`")
    check_conf(spec, conf)
    model = load_model(spec)
    class_ids = resolve_classes(classes.split(","), model.labels) if classes else None
    options = PredictOptions(conf=conf, iou=iou, classes=class_ids, max_det=max_det)
    results = []
    stems = output_stems(files)
    for path, result, image_and_found in _run(model, files, options):
        results.append(result)
        if out is not None and image_and_found is not None:
            _save(out, stems[path], model.labels, image_and_found, with_crops)
        if not as_json:
            _print_table(result)
    model.close()
    if as_json:
        click.echo(json.dumps({"model": spec.name, "version": spec.version, "results": results}, indent=2))
    if any("error" in r for r in results):
        sys.exit(1)


def _detect_remote(
    url: str,
    api_key: str | None,
    files: list[Path],
    options: RemoteOptions,
    as_json: bool,
    out: Path | None,
    with_crops: bool,
) -> None:
    """``detect`` through the server at ``url``: same table, JSON and files as offline."""
    results: list[dict[str, Any]] = []
    head: dict[str, Any] = {"model": options.model, "version": None}
    stems = output_stems(files)
    with Client(url, api_key) as client:
        for path, result, drawing, remote in run_remote(client, files, options, keep_images=out is not None):
            results.append(result)
            if remote is not None:
                head = {"model": remote.model, "version": remote.version}
            if out is not None and drawing is not None:
                image, found, labels = drawing
                _save(out, stems[path], labels, (image, found), with_crops)
            if not as_json:
                _print_table(result)
    if as_json:
        click.echo(json.dumps({**head, "results": results}, indent=2))
    if any("error" in r for r in results):
        sys.exit(1)
