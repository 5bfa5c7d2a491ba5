"""Labelled evaluation sets for box models, read from COCO JSON.

A :class:`LabelledSet` is what every reader gives (COCO here; YOLO label folders and Pascal VOC XML in
:mod:`visionserve.evaluation.formats`): images by file name, objects with a category *name* (matched to
the model's labels by name later, see :mod:`visionserve.evaluation.matching`), boxes as COCO's
``[x, y, width, height]`` in pixels of the image, and the optional COCO segmentation (polygons or RLE)
and keypoints (``[x1, y1, v1, ...]``).

Every reader raises :class:`~visionserve.errors.DatasetError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionserve.errors import DatasetError

#: Annotation files larger than this are refused before they are parsed.
MAX_ANNOTATION_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SetImage:
    """One image: its id in the set, its path relative to the images folder, and its size in pixels
    (0 when the annotations do not say: filled in from the decoded image)."""

    id: int
    file_name: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class SetObject:
    """One labelled object. ``bbox`` is ``(x, y, width, height)`` in image pixels; ``iscrowd``
    marks a region that neither counts as missed nor makes a detection a false positive (COCO's crowd,
    VOC's ``difficult``); ``segmentation`` is COCO's (polygons or RLE), ``keypoints`` COCO's
    ``[x, y, v, ...]``."""

    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    iscrowd: bool = False
    area: float | None = None
    segmentation: Any = None
    keypoints: tuple[float, ...] | None = None


@dataclass(frozen=True)
class LabelledSet:
    """Images, objects and category names (``categories`` maps the set's own category id to its
    name; the set's ids are kept so that detections can be written against the original file)."""

    images: tuple[SetImage, ...]
    objects: tuple[SetObject, ...]
    categories: dict[int, str] = field(default_factory=dict)
    source: str = ""

    @property
    def has_segmentation(self) -> bool:
        return any(o.segmentation is not None for o in self.objects)

    @property
    def has_keypoints(self) -> bool:
        return any(o.keypoints is not None and any(o.keypoints[2::3]) for o in self.objects)

    def without_categories(self, dropped: set[int]) -> LabelledSet:
        """The same set without the objects and categories of ``dropped`` ids."""
        objects = tuple(o for o in self.objects if o.category_id not in dropped)
        categories = {k: v for k, v in self.categories.items() if k not in dropped}
        return LabelledSet(self.images, objects, categories, self.source)

    def with_sizes(self, sizes: dict[int, tuple[int, int]]) -> LabelledSet:
        """Images whose size was unknown get ``sizes[id]`` (width, height); a size that the annotations
        state and the image contradicts raises :class:`DatasetError`."""
        images = []
        for image in self.images:
            width, height = sizes.get(image.id, (image.width, image.height))
            if image.width and image.height and (image.width, image.height) != (width, height):
                raise DatasetError(
                    f"{self.source}: image {image.file_name!r} is {width}x{height} pixels, "
                    f"but the annotations say {image.width}x{image.height}"
                )
            images.append(SetImage(image.id, image.file_name, width, height))
        return LabelledSet(tuple(images), self.objects, self.categories, self.source)


def read_text(path: Path) -> str:
    """The text of an annotation file, refused above :data:`MAX_ANNOTATION_BYTES`."""
    try:
        if path.stat().st_size > MAX_ANNOTATION_BYTES:
            raise DatasetError(f"{path}: larger than {MAX_ANNOTATION_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text") from exc


def read_coco(path: Path) -> LabelledSet:
    """A COCO instances (or person keypoints) file: ``images``, ``annotations`` and ``categories``."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
        raise DatasetError(f"{path}: a COCO file needs 'images' and 'categories' lists")
    try:
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = tuple(
            SetImage(int(i["id"]), str(i["file_name"]), int(i.get("width") or 0), int(i.get("height") or 0))
            for i in data["images"]
        )
        objects = tuple(_coco_object(a) for a in data.get("annotations") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: malformed COCO entry: {exc!r}") from exc
    image_ids = {i.id for i in images}
    for obj in objects:
        if obj.image_id not in image_ids:
            raise DatasetError(f"{path}: an annotation names image id {obj.image_id}, which is not in 'images'")
        if obj.category_id not in categories:
            raise DatasetError(f"{path}: an annotation names category id {obj.category_id}, not in 'categories'")
    return LabelledSet(images, objects, categories, str(path))


def _coco_object(entry: dict[str, Any]) -> SetObject:
    x, y, w, h = (float(v) for v in entry["bbox"])
    keypoints = entry.get("keypoints")
    return SetObject(
        int(entry["image_id"]),
        int(entry["category_id"]),
        (x, y, w, h),
        bool(entry.get("iscrowd", 0)),
        float(entry["area"]) if entry.get("area") is not None else None,
        entry.get("segmentation") or None,
        tuple(float(v) for v in keypoints) if keypoints else None,
    )


def to_coco(labelled: LabelledSet) -> dict[str, Any]:
    """The set as a COCO ground-truth document (``area`` from the box when the set has none)."""
    annotations = []
    for index, obj in enumerate(labelled.objects, start=1):
        entry: dict[str, Any] = {
            "id": index,
            "image_id": obj.image_id,
            "category_id": obj.category_id,
            "bbox": list(obj.bbox),
            "area": obj.area if obj.area is not None else obj.bbox[2] * obj.bbox[3],
            "iscrowd": int(obj.iscrowd),
        }
        if obj.segmentation is not None:
            entry["segmentation"] = obj.segmentation
        if obj.keypoints is not None:
            entry["keypoints"] = list(obj.keypoints)
            entry["num_keypoints"] = sum(1 for v in obj.keypoints[2::3] if v > 0)
        annotations.append(entry)
    return {
        "images": [
            {"id": i.id, "file_name": i.file_name, "width": i.width, "height": i.height} for i in labelled.images
        ],
        "annotations": annotations,
        "categories": [{"id": k, "name": v} for k, v in sorted(labelled.categories.items())],
    }
