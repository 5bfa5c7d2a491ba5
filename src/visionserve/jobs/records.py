"""Between predictions, stored records and rows: what processing commits and what the views show.

Processing turns a prediction into records through :mod:`visionserve.render.rows` (the one step that
sorts and labels), with masks as COCO RLE: exact, and compact enough for a database column. The
views turn records back into rows, so that a job's JSON has the shape of the native API's answers
(:func:`visionserve.render.json.box_row_json`).
"""

from __future__ import annotations

from visionserve.core.classifications import Classifications
from visionserve.core.prediction import Prediction
from visionserve.jobs.model import ClassRecord, DetectionRecord, ItemRecords, MaskRle
from visionserve.models.labels import Labels
from visionserve.render.mask_decoding import patch_from_rle
from visionserve.render.mask_encoding import MaskFormat, polygons
from visionserve.render.rows import BoxRow, ClassRow, KeypointRow, box_rows, class_rows


def item_records(prediction: Prediction, labels: Labels, image_size: tuple[int, int]) -> ItemRecords:
    """The records of ``prediction`` (in pixels of an image of ``image_size = (width, height)``),
    highest score first: detections with their masks (RLE) and keypoints, or classes."""
    if isinstance(prediction, Classifications):
        return ItemRecords(classes=tuple(class_record(row) for row in class_rows(prediction, labels)))
    rows = box_rows(prediction, labels, image_size, MaskFormat.RLE)
    return ItemRecords(detections=tuple(detection_record(row) for row in rows))


def detection_record(row: BoxRow) -> DetectionRecord:
    """The record of a row made with ``MaskFormat.RLE`` (keypoint names are the model's: not stored)."""
    mask = None if row.rle is None else MaskRle.from_coco(row.rle)
    keypoints = None if row.keypoints is None else tuple((p.x, p.y, p.score) for p in row.keypoints)
    return DetectionRecord(row.class_id, row.label, row.score, row.box, mask, keypoints)


def class_record(row: ClassRow) -> ClassRecord:
    return ClassRecord(row.class_id, row.label, row.score)


def box_row(record: DetectionRecord, labels: Labels, mask_format: MaskFormat) -> BoxRow:
    """The row of ``record``: its mask as ``mask_format`` (polygons are traced from the stored RLE),
    its keypoints named by ``labels`` (``keypoint_<k>`` past its names)."""
    shapes, encoded = None, None
    if record.mask is not None and mask_format is MaskFormat.RLE:
        encoded = record.mask.to_coco()
    elif record.mask is not None and mask_format is MaskFormat.POLYGON:
        shapes = polygons(patch_from_rle(record.mask.to_coco()))
    points = None
    if record.keypoints is not None:
        points = tuple(
            KeypointRow(labels.keypoint_name(k), x, y, score) for k, (x, y, score) in enumerate(record.keypoints)
        )
    return BoxRow(record.label, record.class_id, record.score, record.box, shapes, encoded, points)
