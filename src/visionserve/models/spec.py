"""The model spec: what a ``model.yaml`` says, validated, with errors that name file and field.

A minimal ``model.yaml``::

    name: my-yolo
    backend: onnxruntime
    files: {model: best.onnx}
    input: {width: 640, height: 640, resize: letterbox, color: rgb, scale: 0.00392156862745098}
    decoder: {layout: yolov8}
    labels: [person, car]
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visionserve.core.geometry import ResizeMode
from visionserve.errors import ModelSpecError

SPEC_FILENAME = "model.yaml"


class Task(StrEnum):
    DETECT = "detect"
    SEGMENT = "segment"
    CLASSIFY = "classify"
    POSE = "pose"


class BackendKind(StrEnum):
    OPENCV_DNN = "opencv_dnn"
    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"
    PLUGIN = "plugin"


class OutputLayout(StrEnum):
    """The output layouts that visionserve decodes (see ``visionserve.decoders``)."""

    TF_SSD = "tf_ssd"  # [1, 1, N, 7] rows (batch, class, score, x1, y1, x2, y2), normalized
    YOLOV5 = "yolov5"  # [B, N, 5 + C] rows (cx, cy, w, h, objectness, class scores...)
    YOLOV8 = "yolov8"  # [B, 4 + C, N] columns (cx, cy, w, h, class scores...), YOLOv8/YOLO11
    YOLO_REGION = "yolo_region"  # [B, A * (5 + C), H, W] raw YOLOv2 region output
    DARKNET_YOLO = "darknet_yolo"  # OpenCV's Darknet YOLO layers: [N, 5 + C] normalized rows


class ColorOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFiles(_Strict):
    """Model files, relative to the folder of the ``model.yaml``."""

    model: Path
    config: Path | None = None  # .pbtxt for TF graphs, .cfg for Darknet


class InputSpec(_Strict):
    """How images become the network input: ``((pixels[color] / 1) - mean) * scale / std``."""

    width: Annotated[int, Field(gt=0, le=8192)]
    height: Annotated[int, Field(gt=0, le=8192)]
    resize: ResizeMode = ResizeMode.STRETCH
    color: ColorOrder = ColorOrder.RGB
    scale: Annotated[float, Field(gt=0)] = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: Annotated[int, Field(ge=0, le=255)] = 114
    layout: str = Field(default="nchw", pattern="^(nchw|nhwc)$")
    dtype: str = Field(default="float32", pattern="^(float32|float16|uint8)$")
    #: Accept only this batch size (models exported with a fixed batch); None means any.
    fixed_batch: Annotated[int, Field(gt=0)] | None = None


class DecoderSpec(_Strict):
    layout: OutputLayout
    #: YOLO region anchors as (w, h) in grid cells; required for ``yolo_region``.
    anchors: tuple[tuple[float, float], ...] = ()
    #: Number of classes; taken from the labels when omitted.
    num_classes: Annotated[int, Field(gt=0)] | None = None
    #: Whether visionserve runs NMS after decoding (False when the model ends with its own NMS).
    nms: bool = True


class Thresholds(_Strict):
    conf: Annotated[float, Field(ge=0, le=1)] = 0.4
    iou: Annotated[float, Field(ge=0, le=1)] = 0.45
    max_det: Annotated[int, Field(gt=0, le=10000)] = 100


class RuntimeSpec(_Strict):
    """Runtime options; unknown names are rejected by the backend that reads them."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: Annotated[int, Field(ge=0)] = 0  # 0 = the runtime's default
    opencv_backend: str = "default"
    opencv_target: str = "cpu"
    #: The GPU of this session (CUDA device index) when a CUDA provider, backend or target is named.
    device_id: Annotated[int, Field(ge=0)] = 0


class BatchingSpec(_Strict):
    max_batch_size: Annotated[int, Field(gt=0, le=256)] = 8
    max_queue_delay_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    queue_size: Annotated[int, Field(gt=0)] = 64


class ModelSpec(_Strict):
    """A validated model description. ``root`` is the folder that relative file paths start from."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: str = "1"
    task: Task = Task.DETECT
    backend: BackendKind
    description: str = ""
    files: ModelFiles | None = None
    input: InputSpec | None = None
    decoder: DecoderSpec | None = None
    labels: Path | tuple[str, ...] | dict[int, str] = ()
    thresholds: Thresholds = Thresholds()
    runtime: RuntimeSpec = RuntimeSpec()
    batching: BatchingSpec = BatchingSpec()
    instances: Annotated[int, Field(gt=0, le=64)] = 1
    #: Devices of the instances, in turn: instance ``i`` runs on ``devices[i % len(devices)]``
    #: (``cpu`` or ``cuda:N``); empty means what ``runtime`` says (the CPU by default).
    devices: tuple[Annotated[str, Field(pattern=r"^(cpu|cuda:\d+)$")], ...] = ()
    plugin: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    options: dict[str, Any] = Field(default_factory=dict)  # free-form, passed to plugins
    root: Path = Path()

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_yaml(cls, value: Any) -> Any:
        return Path(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_backend_fields(self) -> ModelSpec:
        if self.backend is BackendKind.PLUGIN:
            if self.plugin is None:
                raise ValueError("backend 'plugin' needs 'plugin: package.module:ClassName'")
            return self
        missing = [f for f in ("files", "input", "decoder") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"backend {self.backend.value!r} needs {', '.join(missing)}")
        if self.decoder and self.decoder.layout is OutputLayout.YOLO_REGION and not self.decoder.anchors:
            raise ValueError("decoder layout 'yolo_region' needs 'anchors'")
        return self

    @property
    def network(self) -> tuple[ModelFiles, InputSpec, DecoderSpec]:
        """Files, input and decoder of a network-backed spec (validation guarantees them)."""
        if self.files is None or self.input is None or self.decoder is None:
            raise ModelSpecError(f"model {self.name!r} ({self.backend.value}) has no network files")
        return self.files, self.input, self.decoder

    def path(self, relative: Path) -> Path:
        """A model file's absolute path (``relative`` is taken from the spec's folder)."""
        return relative if relative.is_absolute() else self.root / relative


def spec_from_mapping(data: Any, source: str, root: Path) -> ModelSpec:
    """Validate a parsed ``model.yaml``; errors name ``source`` and each wrong field."""
    if not isinstance(data, dict):
        raise ModelSpecError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return ModelSpec.model_validate({**data, "root": root})
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(root)'}': {err['msg']}" for err in exc.errors()
        )
        raise ModelSpecError(f"{source}: {problems}") from None


def load_spec(path: Path) -> ModelSpec:
    """Read and validate ``path`` (a ``model.yaml``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ModelSpecError(f"{path}: not valid YAML: {exc}") from exc
    return spec_from_mapping(data, str(path), path.parent)
