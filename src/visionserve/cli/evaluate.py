"""``visionserve eval``: a model's accuracy on a labelled set, offline, exactly as the server runs it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from visionserve.cli.common import models_dir_option, open_repository, reports_errors
from visionserve.evaluation.classify_sets import ClassifySet
from visionserve.evaluation.evaluate import Evaluation, configured_conf, evaluate_boxes, evaluate_classes
from visionserve.evaluation.inputs import SetFormat, guess_format, read_set
from visionserve.evaluation.runner import local_infer
from visionserve.evaluation.table import report_table
from visionserve.evaluation.thresholds import save_thresholds, thresholds_path
from visionserve.models.loading import load_model
from visionserve.models.spec import Task
from visionserve.pipeline import Predictor


def _run(
    model: Predictor, fmt: SetFormat, images: Path, annotations: Path | None, options: dict[str, Any]
) -> Evaluation:
    spec = model.spec
    labelled = read_set(fmt, images, annotations, spec.task)
    count = len(labelled.items) if isinstance(labelled, ClassifySet) else len(labelled.images)
    with tqdm(total=count, file=sys.stderr, unit="img", desc="eval", disable=options["quiet"]) as bar:
        step = bar.update
        infer = local_infer(model)
        skip = options["skip_unknown"]
        if isinstance(labelled, ClassifySet):
            return evaluate_classes(spec, model.labels, labelled, images, infer, skip, lambda: step(1))
        configured = configured_conf(spec, model.labels)
        return evaluate_boxes(spec, model.labels, labelled, images, infer, configured, skip, lambda: step(1))


@click.command("eval")
@click.option("--model", "model_name", help="Model name in the repository, or path to a model.yaml or file.")
@models_dir_option
@click.option(
    "--images", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="Images folder."
)
@click.option(
    "--annotations",
    type=click.Path(exists=True, path_type=Path),
    help="COCO JSON, YOLO labels folder, VOC XML folder, or file,label CSV (none: class folders under --images).",
)
@click.option("--format", "fmt", type=click.Choice([f.value for f in SetFormat]), help="Default: guessed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (nothing else).")
@click.option("--save-thresholds", is_flag=True, help="Save the per-class F1-optimal thresholds (for conf=best).")
@click.option(
    "--save-detections",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the detections as COCO results (against the set's image and category ids).",
)
@click.option("--skip-unknown-classes", "skip_unknown", is_flag=True, help="Leave out classes the model lacks.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def evaluate(
    model_name: str | None, models_dir: Path | None, images: Path, annotations: Path | None, **options: Any
) -> None:
    """Measure a model's accuracy on labelled images: COCO mAP, per-class AP, precision and recall at the
    model's threshold and the F1-optimal threshold of each class (classify models: top-1/top-5)."""
    repository = open_repository(models_dir)
    spec = repository.resolve(model_name)
    fmt = SetFormat(options["fmt"]) if options["fmt"] else guess_format(annotations, spec.task)
    target = thresholds_path(spec, repository) if options["save_thresholds"] else None
    if target is not None and spec.task is Task.CLASSIFY:
        raise click.UsageError("--save-thresholds is for box models (classify models answer their top classes)")
    model = load_model(spec)
    try:
        evaluation = _run(model, fmt, images, annotations, options)
    finally:
        model.close()
    report = evaluation.report
    if options["save_detections"] is not None:
        options["save_detections"].write_text(json.dumps(evaluation.results), encoding="utf-8")
    if target is not None:
        saved = save_thresholds(target, report, str(annotations or images))
        report["thresholds_file"] = str(target)
        click.echo(f"saved {len(saved)} per-class thresholds to {target}", err=True)
    click.echo(json.dumps(report, indent=2) if options["as_json"] else report_table(report))
