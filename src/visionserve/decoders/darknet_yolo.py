"""Darknet YOLO (v2 region, v3, v4) as OpenCV's Darknet importer outputs it.

OpenCV runs the ``[yolo]``/``[region]`` layers itself: each output layer gives rows
``(cx, cy, w, h, objectness, C class scores)`` with the box normalized to ``[0, 1]`` of the input
and each class score already multiplied by the objectness (scores under the layer's ``thresh``,
0.2 by default, are set to 0). With OpenCV 4.14 an output is ``[N, 5 + C]`` for a batch of one
image and ``[B, N, 5 + C]`` for larger batches; older versions stacked a batch as ``[B * N, 5 + C]``,
which is read too (rows split evenly between the images).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionserve.decoders.base import Candidates, DecodeParams, cxcywh_to_xyxy, register
from visionserve.decoders.yolo_ultralytics import best_class, check_classes
from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray, FloatArray

_HINT = "[N, 5 + C] or [B, N, 5 + C] (OpenCV Darknet YOLO layers)"


def _per_image_rows(output: AnyArray, batch_size: int) -> FloatArray:
    """One output layer as ``(batch_size, N, 5 + C)`` float32 rows."""
    if output.ndim == 3 and output.shape[0] >= batch_size:
        return output[:batch_size].astype(np.float32)
    if output.ndim == 2 and output.shape[0] % batch_size == 0:
        return output.astype(np.float32).reshape(batch_size, -1, output.shape[1])
    raise DecodeError(f"darknet_yolo decoder expects outputs {_HINT} for {batch_size} images, got shape {output.shape}")


@register(OutputLayout.DARKNET_YOLO)
def decode_darknet_yolo(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Decode all YOLO output layers together: per row the best class score (objectness included),
    boxes scaled from ``[0, 1]`` to input pixels. Rows whose score is 0 (dropped by OpenCV) or under
    ``params.conf`` are left out."""
    if not outputs:
        raise DecodeError(f"darknet_yolo decoder expects one or more outputs {_HINT}, got none")
    layers = [_per_image_rows(output, batch_size) for output in outputs]
    widths = {layer.shape[2] for layer in layers}
    if len(widths) != 1:
        shapes = [tuple(o.shape) for o in outputs]
        raise DecodeError(f"darknet_yolo decoder expects outputs {_HINT} with one class count, got shapes {shapes}")
    rows = np.concatenate(layers, axis=1)
    check_classes(rows.shape[2] - 5, params, "darknet_yolo", _HINT, tuple(outputs[0].shape))
    scores, class_ids = best_class(rows[..., 5:])
    size = np.array([params.input_width, params.input_height] * 2, dtype=np.float32)
    result = []
    for index in range(batch_size):
        keep = (scores[index] >= params.conf) & (scores[index] > 0)
        boxes = cxcywh_to_xyxy(rows[index, keep, :4]) * size
        result.append(Candidates(boxes.astype(np.float32), scores[index][keep], class_ids[index][keep]))
    return result
