"""Which reader an evaluation set needs: ``--format``, or a guess from the annotations' shape."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from visionserve.errors import DatasetError
from visionserve.evaluation.classify_sets import ClassifySet, read_csv, read_folders
from visionserve.evaluation.datasets import LabelledSet, read_coco
from visionserve.evaluation.formats import read_voc, read_yolo
from visionserve.models.spec import Task


class SetFormat(StrEnum):
    """How the labels of an evaluation set are written."""

    COCO = "coco"  # one COCO JSON file
    YOLO = "yolo"  # a folder of <image stem>.txt files with data.yaml or classes.txt
    VOC = "voc"  # a folder of Pascal VOC .xml files
    FOLDERS = "folders"  # classify: the images folder has one sub-folder per class
    CSV = "csv"  # classify: a file,label CSV


CLASSIFY_FORMATS = frozenset({SetFormat.FOLDERS, SetFormat.CSV})


def guess_format(annotations: Path | None, task: Task) -> SetFormat:
    """``.json`` is COCO, ``.csv`` CSV, ``.xml`` (or a folder of them) VOC, a folder of ``.txt``
    YOLO; no annotations: class folders (classify models only)."""
    if annotations is None:
        if task is Task.CLASSIFY:
            return SetFormat.FOLDERS
        raise DatasetError("--annotations is needed for a box model (a COCO file, a YOLO or VOC folder)")
    suffix = annotations.suffix.lower()
    if annotations.is_file():
        by_suffix = {".json": SetFormat.COCO, ".csv": SetFormat.CSV, ".xml": SetFormat.VOC}
        if suffix in by_suffix:
            return by_suffix[suffix]
    elif annotations.is_dir():
        if any(annotations.rglob("*.xml")):
            return SetFormat.VOC
        if any(annotations.rglob("*.txt")):
            return SetFormat.YOLO
    raise DatasetError(f"{annotations}: cannot tell its format; say --format coco|yolo|voc|folders|csv")


def read_set(fmt: SetFormat, images: Path, annotations: Path | None, task: Task) -> LabelledSet | ClassifySet:
    """The set in ``fmt``; a classify format for a box model (or the reverse) raises :class:`DatasetError`."""
    if (fmt in CLASSIFY_FORMATS) != (task is Task.CLASSIFY):
        kind = "classify models" if fmt in CLASSIFY_FORMATS else "box models (detect, segment, pose)"
        raise DatasetError(f"format {fmt.value!r} is for {kind}; this model's task is {task.value}")
    if fmt is SetFormat.FOLDERS:
        return read_folders(images)
    if annotations is None:
        raise DatasetError(f"format {fmt.value!r} needs --annotations")
    if fmt is SetFormat.CSV:
        return read_csv(annotations)
    if fmt is SetFormat.COCO:
        return read_coco(annotations)
    if fmt is SetFormat.YOLO:
        return read_yolo(annotations, images)
    return read_voc(annotations, images)
