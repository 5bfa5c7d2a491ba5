"""YOLO label folders and Pascal VOC XML, read into a :class:`LabelledSet`.

**YOLO** (Ultralytics/Darknet): one ``<image stem>.txt`` per image in the labels folder, a line per
object, ``class cx cy w h`` normalised to ``[0, 1]`` (a segmentation line ``class x1 y1 x2 y2 ...``
gives a polygon and its extent as the box). An image with no label file has no objects. The class
names come from a names list found in the labels folder or its parent: ``data.yaml`` (Ultralytics:
``names:`` a list, or a mapping of index to name) first, then ``classes.txt`` (one name a line, the
line index being the class).

**Pascal VOC**: one XML file per image in the annotations folder, with ``filename``,
``size/width``/``height`` and ``object`` entries (``name``, ``bndbox`` ``xmin ymin xmax ymax`` in
pixels, read as ``x = xmin, width = xmax - xmin``; ``difficult`` objects count as crowd regions, which
COCO's matching ignores).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import yaml

from visionserve.core.images import read_header
from visionserve.errors import DatasetError, InputError
from visionserve.evaluation.datasets import LabelledSet, SetImage, SetObject, read_text

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
NAMES_FILES = ("data.yaml", "data.yml", "classes.txt")


def image_files(images: Path) -> list[Path]:
    """The image files under ``images`` (recursively), sorted by relative path."""
    if not images.is_dir():
        raise DatasetError(f"{images}: not a folder of images")
    return sorted(p for p in images.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def yolo_names(labels: Path) -> dict[int, str]:
    """Class index to name, from the first of :data:`NAMES_FILES` in ``labels`` or its parent."""
    for folder in (labels, labels.parent):
        for name in NAMES_FILES:
            path = folder / name
            if path.is_file():
                return _names_from(path)
    raise DatasetError(f"{labels}: no class names: put a data.yaml (names: [...]) or classes.txt beside the labels")


def _names_from(path: Path) -> dict[int, str]:
    text = read_text(path)
    if path.suffix == ".txt":
        return {i: line.strip() for i, line in enumerate(line for line in text.splitlines() if line.strip())}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from exc
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: 'names' keys must be class indices: {exc}") from exc
    raise DatasetError(f"{path}: needs 'names:', a list or a mapping of index to name")


def _size(path: Path) -> tuple[int, int]:
    try:
        header = read_header(path.read_bytes())
    except (OSError, InputError) as exc:
        raise DatasetError(f"{path}: cannot read the image size: {exc}") from exc
    return header.width, header.height


def read_yolo(labels: Path, images: Path) -> LabelledSet:
    """A YOLO label folder for the images under ``images`` (see the module docstring)."""
    if not labels.is_dir():
        raise DatasetError(f"{labels}: YOLO labels must be a folder of .txt files")
    names = yolo_names(labels)
    found: list[SetImage] = []
    objects: list[SetObject] = []
    for image_id, path in enumerate(image_files(images), start=1):
        width, height = _size(path)
        found.append(SetImage(image_id, path.relative_to(images).as_posix(), width, height))
        label_file = labels / path.relative_to(images).with_suffix(".txt")
        if label_file.is_file():
            for number, line in enumerate(read_text(label_file).splitlines(), start=1):
                if line.strip():
                    where = f"{label_file}:{number}"
                    objects.append(_yolo_object(line.split(), image_id, width, height, names, where))
    return LabelledSet(tuple(found), tuple(objects), names, str(labels))


def _yolo_object(
    fields: list[str], image_id: int, width: int, height: int, names: dict[int, str], where: str
) -> SetObject:
    try:
        class_index, values = int(fields[0]), [float(v) for v in fields[1:]]
    except ValueError as exc:
        raise DatasetError(f"{where}: not 'class cx cy w h': {exc}") from exc
    if class_index not in names:
        raise DatasetError(f"{where}: class {class_index} is not in the names list")
    if len(values) == 4:
        cx, cy, w, h = values
        box = ((cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height)
        return SetObject(image_id, class_index, box)
    if len(values) >= 6 and len(values) % 2 == 0:
        xs = [v * width for v in values[0::2]]
        ys = [v * height for v in values[1::2]]
        polygon = [c for xy in zip(xs, ys, strict=True) for c in xy]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        return SetObject(image_id, class_index, box, segmentation=[polygon])
    raise DatasetError(f"{where}: expected 4 box values or an even number (>= 6) of polygon values, got {len(values)}")


def read_voc(annotations: Path, images: Path) -> LabelledSet:
    """A folder of Pascal VOC XML files (or one file) for the images under ``images``."""
    files = sorted(annotations.rglob("*.xml")) if annotations.is_dir() else [annotations]
    if not files:
        raise DatasetError(f"{annotations}: no .xml files")
    names: dict[str, int] = {}
    found: list[SetImage] = []
    objects: list[SetObject] = []
    for image_id, path in enumerate(files, start=1):
        try:
            root = ElementTree.fromstring(read_text(path))
        except ElementTree.ParseError as exc:
            raise DatasetError(f"{path}: not valid XML: {exc}") from exc
        file_name = _voc_file_name(root, path, images)
        found.append(SetImage(image_id, file_name, _int(root, "size/width", path), _int(root, "size/height", path)))
        for entry in root.iter("object"):
            name = (entry.findtext("name") or "").strip()
            if not name:
                raise DatasetError(f"{path}: an object without a name")
            category = names.setdefault(name, len(names) + 1)
            objects.append(_voc_object(entry, image_id, category, path))
    return LabelledSet(tuple(found), tuple(objects), {v: k for k, v in names.items()}, str(annotations))


def _voc_file_name(root: Any, path: Path, images: Path) -> str:
    """The image's name from ``<filename>``, else the image of the XML file's stem."""
    name = (root.findtext("filename") or "").strip()
    if name:
        return name
    for suffix in IMAGE_SUFFIXES:
        if (images / f"{path.stem}{suffix}").is_file():
            return f"{path.stem}{suffix}"
    raise DatasetError(f"{path}: no <filename> and no image named {path.stem}.* in {images}")


def _int(root: Any, where: str, path: Path) -> int:
    text = root.findtext(where)
    try:
        return int(float(text)) if text else 0
    except ValueError as exc:
        raise DatasetError(f"{path}: <{where}> is not a number: {text!r}") from exc


def _voc_object(entry: Any, image_id: int, category: int, path: Path) -> SetObject:
    box = entry.find("bndbox")
    if box is None:
        raise DatasetError(f"{path}: object {entry.findtext('name')!r} has no <bndbox>")
    try:
        x1, y1, x2, y2 = (float(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError as exc:
        raise DatasetError(f"{path}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from exc
    difficult = (entry.findtext("difficult") or "0").strip() == "1"
    return SetObject(image_id, category, (x1, y1, x2 - x1, y2 - y1), iscrowd=difficult)
