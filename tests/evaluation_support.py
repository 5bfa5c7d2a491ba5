"""A small labelled set for evaluation tests, and converters of its COCO file to YOLO and VOC.

The set: scikit-image photos whose ground truth is the default model's own confident detections
(score >= :data:`GT_SCORE`), plus hand-made cases:

- a missed object: a ``cat`` box on ``rocket`` (the model finds no cat there);
- a false positive: ``astronaut_fp.jpg``, a copy of ``astronaut`` with no objects, so the model's
  person there matches nothing (``person`` is a class of the set through ``astronaut``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from tests.conftest import encode, photo

from visionserve.core.detections import Detections
from visionserve.evaluation.runner import Infer
from visionserve.models.labels import Labels

PHOTO_NAMES = ("chelsea", "astronaut", "coffee", "rocket")
GT_SCORE = 0.5
MISSED_BOX = [10.0, 10.0, 100.0, 100.0]  # on rocket.jpg, labelled cat


def write_photos(folder: Path) -> list[str]:
    """The photos as JPEG files in ``folder`` (plus the false-positive copy); their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name in PHOTO_NAMES:
        (folder / f"{name}.jpg").write_bytes(encode(photo(name), ".jpg", IMWRITE_JPEG_QUALITY=95))
        names.append(f"{name}.jpg")
    (folder / "astronaut_fp.jpg").write_bytes((folder / "astronaut.jpg").read_bytes())
    return [*names, "astronaut_fp.jpg"]


def build_coco(folder: Path, infer: Infer, labels: Labels) -> dict[str, Any]:
    """The COCO ground truth of the photos in ``folder`` (see the module docstring); category ids
    are numbered 1.. by first appearance (not the model's ids: matching is by name)."""
    categories: dict[str, int] = {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, name in enumerate(sorted(p.name for p in folder.glob("*.jpg")), start=1):
        found, width, height = infer((folder / name).read_bytes())
        assert isinstance(found, Detections)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        if name == "astronaut_fp.jpg":
            continue
        boxes = [(labels.name(int(c)), b) for c, b, s in zip(found.class_id, found.xyxy, found.confidence, strict=True)
                 if s >= GT_SCORE]  # fmt: skip
        if name == "rocket.jpg":
            boxes.append(
                ("cat", [MISSED_BOX[0], MISSED_BOX[1], MISSED_BOX[0] + MISSED_BOX[2], MISSED_BOX[1] + MISSED_BOX[3]])
            )
        for label, (x1, y1, x2, y2) in boxes:
            category = categories.setdefault(label, len(categories) + 1)
            w, h = float(x2 - x1), float(y2 - y1)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [float(x1), float(y1), w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": v, "name": k} for k, v in categories.items()],
    }


def to_yolo(coco: dict[str, Any], labels_dir: Path) -> None:
    """YOLO label files (``<stem>.txt``, normalised ``class cx cy w h``) and ``data.yaml`` names."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    ids = sorted(c["id"] for c in coco["categories"])
    index = {category: i for i, category in enumerate(ids)}
    names = {c["id"]: c["name"] for c in coco["categories"]}
    (labels_dir / "data.yaml").write_text(json.dumps({"names": [names[i] for i in ids]}), encoding="utf-8")
    for image in coco["images"]:
        w, h = image["width"], image["height"]
        lines = []
        for a in coco["annotations"]:
            if a["image_id"] == image["id"]:
                x, y, bw, bh = a["bbox"]
                lines.append(
                    f"{index[a['category_id']]} {(x + bw / 2) / w!r} {(y + bh / 2) / h!r} {bw / w!r} {bh / h!r}"
                )
        (labels_dir / Path(image["file_name"]).with_suffix(".txt").name).write_text("\n".join(lines), encoding="utf-8")


def to_voc(coco: dict[str, Any], xml_dir: Path) -> None:
    """One Pascal VOC XML file per image (boxes as ``xmin ymin xmax ymax``)."""
    xml_dir.mkdir(parents=True, exist_ok=True)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for image in coco["images"]:
        root = ElementTree.Element("annotation")
        ElementTree.SubElement(root, "filename").text = image["file_name"]
        size = ElementTree.SubElement(root, "size")
        ElementTree.SubElement(size, "width").text = str(image["width"])
        ElementTree.SubElement(size, "height").text = str(image["height"])
        for a in coco["annotations"]:
            if a["image_id"] != image["id"]:
                continue
            entry = ElementTree.SubElement(root, "object")
            ElementTree.SubElement(entry, "name").text = names[a["category_id"]]
            ElementTree.SubElement(entry, "difficult").text = "0"
            box = ElementTree.SubElement(entry, "bndbox")
            x, y, w, h = a["bbox"]
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (x, y, x + w, y + h), strict=True):
                ElementTree.SubElement(box, key).text = repr(value)
        ElementTree.ElementTree(root).write(xml_dir / Path(image["file_name"]).with_suffix(".xml").name)
