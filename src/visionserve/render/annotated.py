"""An annotated copy of an image as JPEG bytes: what ``format=image``, Roboflow visualisations and
job artifacts send."""

from __future__ import annotations

import cv2

from visionserve.core.prediction import Prediction
from visionserve.errors import InferenceError
from visionserve.models.labels import Labels
from visionserve.render.annotators import RenderMode, annotators_for, render
from visionserve.types import BGRImage

JPEG_QUALITY = 90


def annotated_jpeg(
    image: BGRImage, prediction: Prediction, labels: Labels, mode: RenderMode = RenderMode.BOXES_MASKS
) -> bytes:
    """A JPEG of ``image`` with ``prediction`` (in ``image``'s pixels) drawn as ``mode`` says: boxes,
    masks, keypoint skeletons, class banners. Blocking: call it off the event loop. Raises
    :class:`InferenceError` when OpenCV cannot encode the result."""
    canvas = render(image, prediction, annotators_for(labels, mode))
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise InferenceError("cannot encode the annotated image as JPEG")
    return bytes(encoded.tobytes())
