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
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from visionserve.core.geometry import ResizeMode
from visionserve.errors import ModelSpecError

SPEC_FILENAME = "model.yaml"
#: The per-class thresholds file beside a ``model.yaml`` (``visionserve eval --save-thresholds`` writes it).
THRESHOLDS_FILENAME = "thresholds.yaml"
#: The ``conf`` value that asks for the saved per-class thresholds.
BEST: Literal["best"] = "best"


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
    MODULE = "module"  # an analysis module folder: main.py with inference_by_path (visionserve.modules)


class ModuleImageFormat(StrEnum):
    """The file format of the picture an analysis module is given (lossless by default)."""

    PNG = "png"
    JPG = "jpg"
    BMP = "bmp"


class OutputLayout(StrEnum):
    """The output layouts that visionserve decodes (see ``visionserve.decoders``); plugins may register
    more by name."""

    TF_SSD = "tf_ssd"  # [1, 1, N, 7] rows (batch, class, score, x1, y1, x2, y2), normalized
    YOLOV5 = "yolov5"  # [B, N, 5 + C] rows (cx, cy, w, h, objectness, class scores...)
    YOLOV8 = "yolov8"  # [B, 4 + C, N] columns (cx, cy, w, h, class scores...), YOLOv8/YOLO11
    YOLO_REGION = "yolo_region"  # [B, A * (5 + C), H, W] raw YOLOv2 region output
    DARKNET_YOLO = "darknet_yolo"  # OpenCV's Darknet YOLO layers: [N, 5 + C] normalized rows
    YOLOV8_SEG = "yolov8_seg"  # [B, 4 + C + M, N] columns + prototypes [B, M, H/4, W/4]
    MASK_RCNN = "mask_rcnn"  # TF-OD Mask R-CNN via OpenCV: [1, 1, N, 7] rows + masks [N, C, 15, 15]
    YOLOV8_POSE = "yolov8_pose"  # [B, 4 + 1 + K * 3, N] columns (cx, cy, w, h, score, K x (x, y, score))
    MOVENET = "movenet"  # MoveNet single-pose [1, 1, K, 3] rows (y, x, score), normalized
    CLASSIFY = "classify"  # [B, C] scores (see decoder.activation)
    YOLOV8_CLS = "yolov8_cls"  # [B, C] probabilities (YOLOv8/YOLO11-cls: softmax inside)

    @property
    def task(self) -> Task:
        """The task this layout's results answer."""
        return _LAYOUT_TASKS.get(self, Task.DETECT)


_LAYOUT_TASKS = {
    OutputLayout.YOLOV8_SEG: Task.SEGMENT,
    OutputLayout.MASK_RCNN: Task.SEGMENT,
    OutputLayout.YOLOV8_POSE: Task.POSE,
    OutputLayout.MOVENET: Task.POSE,
    OutputLayout.CLASSIFY: Task.CLASSIFY,
    OutputLayout.YOLOV8_CLS: Task.CLASSIFY,
}


class Activation(StrEnum):
    """What turns a classifier's raw outputs into scores."""

    NONE = "none"  # the outputs are already probabilities
    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


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
    #: A Python module whose import registers ``layout`` (a file in the model's folder, or importable):
    #: how a layout of your own is added (``@register("my_layout", Task.DETECT)``).
    module: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*$")

    #: A built-in :class:`OutputLayout`, or the name a plugin registered.
    layout: OutputLayout | Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = Field(union_mode="left_to_right")
    #: YOLO region anchors as (w, h) in grid cells; required for ``yolo_region``.
    anchors: tuple[tuple[float, float], ...] = ()
    #: Number of classes; taken from the labels when omitted.
    num_classes: Annotated[int, Field(gt=0)] | None = None
    #: Whether visionserve runs NMS after decoding (False when the model ends with its own NMS).
    nms: bool = True
    #: Classifiers: what turns the outputs into scores.
    activation: Activation = Activation.NONE

    @field_validator("layout")
    @classmethod
    def _known_or_registered(cls, layout: OutputLayout | str, info: ValidationInfo) -> OutputLayout | str:
        if not isinstance(layout, OutputLayout) and info.data.get("module") is None:
            known = ", ".join(item.value for item in OutputLayout)
            raise ValueError(
                f"unknown layout {layout!r} (built in: {known}); a layout of your own needs "
                "'decoder.module', the module that registers it"
            )
        return layout


class KeypointSpec(_Strict):
    """Names of a pose model's keypoints and the pairs a skeleton drawing joins (indices into
    ``names``). Omitted: the 17 COCO keypoints when the model has 17."""

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()

    @model_validator(mode="after")
    def _check_skeleton(self) -> KeypointSpec:
        for a, b in self.skeleton:
            if not (0 <= a < len(self.names) and 0 <= b < len(self.names)):
                raise ValueError(f"skeleton pair ({a}, {b}) names a keypoint outside 0..{len(self.names) - 1}")
        return self


class Thresholds(_Strict):
    """Default thresholds of the model's answers. ``conf: best`` (or ``best: true``) makes the saved
    per-class thresholds the default (see :attr:`ModelSpec.class_conf`); then ``conf`` (0.4 unless given
    with ``best: true``) is the threshold of the classes that have none saved."""

    conf: Annotated[float, Field(ge=0, le=1)] = 0.4
    best: bool = False
    iou: Annotated[float, Field(ge=0, le=1)] = 0.45
    max_det: Annotated[int, Field(gt=0, le=10000)] = 100
    #: Classifiers: how many classes an answer lists.
    top_k: Annotated[int, Field(gt=0, le=10000)] = 5

    @model_validator(mode="before")
    @classmethod
    def _conf_best(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("conf"), str) and data["conf"].strip().lower() == BEST:
            return {**{k: v for k, v in data.items() if k != "conf"}, "best": True}
        return data


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


class ModuleSection(_Strict):
    """An analysis module (``backend: module``): the class in ``file`` (relative to the model's
    folder) answering ``inference_by_path(path)``; without ``class``, the only such class there."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_name: str | None = Field(default=None, alias="class", pattern=r"^[A-Za-z_]\w*$")
    file: str = Field(default="main.py", pattern=r"^[A-Za-z0-9_][\w.-]*\.py$")
    #: The format of the temporary picture file handed to ``inference_by_path``.
    image_format: ModuleImageFormat = ModuleImageFormat.PNG


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
    keypoints: KeypointSpec | None = None
    thresholds: Thresholds = Thresholds()
    #: Per-class confidence thresholds by label name (``conf=best``), from ``thresholds.yaml`` beside
    #: the model.yaml (which wins) or written here by hand.
    class_conf: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    runtime: RuntimeSpec = RuntimeSpec()
    batching: BatchingSpec = BatchingSpec()
    instances: Annotated[int, Field(gt=0, le=64)] = 1
    #: Devices of the instances, in turn: instance ``i`` runs on ``devices[i % len(devices)]``
    #: (``cpu`` or ``cuda:N``); empty means what ``runtime`` says (the CPU by default).
    devices: tuple[Annotated[str, Field(pattern=r"^(cpu|cuda:\d+)$")], ...] = ()
    plugin: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    module: ModuleSection | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # free-form, passed to plugins
    root: Path = Path()

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_yaml(cls, value: Any) -> Any:
        return Path(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_backend_fields(self) -> ModelSpec:
        if self.module is not None and self.backend is not BackendKind.MODULE:
            raise ValueError(f"'module' is for backend 'module', not {self.backend.value!r}")
        if self.backend is BackendKind.MODULE:
            if self.module is None:
                object.__setattr__(self, "module", ModuleSection())
            return self
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

    @field_validator("decoder")
    @classmethod
    def _layout_answers_the_task(cls, decoder: DecoderSpec | None, info: ValidationInfo) -> DecoderSpec | None:
        # A field validator (``task`` is validated before ``decoder``), so that the error names the field.
        task = info.data.get("task")
        if decoder is None or task is None or not isinstance(decoder.layout, OutputLayout):
            return decoder
        layout = decoder.layout
        if layout.task is not task:
            fitting = ", ".join(item.value for item in OutputLayout if item.task is task)
            raise ValueError(
                f"layout {layout.value!r} gives {layout.task.value} results, but the task is "
                f"{task.value} (layouts for {task.value}: {fitting or 'none built in'})"
            )
        return decoder

    @model_validator(mode="after")
    def _classify_keeps_low_scores(self) -> ModelSpec:
        # A classifier lists its top-k classes whatever their score unless its thresholds name a conf
        # (``thresholds: {top_k: 3}`` alone must not bring in the detectors' default conf).
        # An analysis module filters its own answers: they are kept as they come unless a conf is named.
        keeps_all = self.task is Task.CLASSIFY or self.backend is BackendKind.MODULE
        if keeps_all and "conf" not in self.thresholds.model_fields_set:
            object.__setattr__(self, "thresholds", self.thresholds.model_copy(update={"conf": 0.0}))
        return self

    @model_validator(mode="after")
    def _best_needs_thresholds(self) -> ModelSpec:
        if self.thresholds.best and not self.class_conf:
            raise ValueError(
                "thresholds.conf is 'best' but no per-class thresholds are saved: run "
                f"`visionserve eval --save-thresholds` (it writes {THRESHOLDS_FILENAME} beside model.yaml)"
            )
        return self

    @property
    def source(self) -> str:
        """The file this spec comes from, for error messages."""
        return str(self.root / SPEC_FILENAME) if self.root != Path() else self.name

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


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ModelSpecError(f"{path}: not valid YAML: {exc}") from exc


def read_class_conf(path: Path) -> dict[str, float]:
    """The ``classes:`` mapping (label name to threshold) of a ``thresholds.yaml``; {} when there is no
    such file. Raises :class:`ModelSpecError` naming the file when it does not validate."""
    if not path.is_file():
        return {}
    data = _read_yaml(path)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, dict):
        raise ModelSpecError(f"{path}: needs 'classes:', a mapping of label name to threshold")
    try:
        found = {str(k): float(v) for k, v in classes.items()}
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(f"{path}: thresholds must be numbers: {exc}") from exc
    wrong = [k for k, v in found.items() if not 0.0 <= v <= 1.0]
    if wrong:
        raise ModelSpecError(f"{path}: thresholds must be between 0 and 1 ({', '.join(wrong)})")
    return found


def load_spec(path: Path) -> ModelSpec:
    """Read and validate ``path`` (a ``model.yaml``), with the per-class thresholds of a
    ``thresholds.yaml`` beside it."""
    data = _read_yaml(path)
    saved = read_class_conf(path.parent / THRESHOLDS_FILENAME)
    if saved and isinstance(data, dict):
        written = data.get("class_conf")
        data = {**data, "class_conf": {**(written if isinstance(written, dict) else {}), **saved}}
    return spec_from_mapping(data, str(path), path.parent)
