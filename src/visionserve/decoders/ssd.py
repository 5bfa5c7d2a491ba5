"""TF Object Detection API SSD output, as OpenCV's DetectionOutput layer gives it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionserve.decoders.base import Candidates, DecodeParams, expect_shape, register
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray


@register(OutputLayout.TF_SSD)
def decode_tf_ssd(outputs: Sequence[AnyArray], batch_size: int, params: DecodeParams) -> list[Candidates]:
    """Decode ``[1, 1, N, 7]`` rows ``(image_id, class_id, score, x1, y1, x2, y2)`` with box corners
    normalized to ``[0, 1]``; rows of all images of the batch come together, told apart by
    ``image_id``. The model has already run NMS; class ids are the label map's (1 = person)."""
    expect_shape(outputs[0], 4, "tf_ssd", "[1, 1, N, 7]")
    rows = outputs[0].reshape(-1, 7).astype(np.float32)
    rows = rows[rows[:, 2] >= params.conf]
    size = np.array([params.input_width, params.input_height] * 2, dtype=np.float32)
    result = []
    for index in range(batch_size):
        mine = rows[rows[:, 0] == index]
        result.append(Candidates(mine[:, 3:7] * size, mine[:, 2].copy(), mine[:, 1].astype(np.int32)))
    return result
