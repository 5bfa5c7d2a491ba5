"""Specs inferred for bare model files, served without a ``model.yaml``.

* ``.onnx``: loaded once with ONNX Runtime (CPU) to read its input and output shapes and the
  metadata that Ultralytics exports write (``names``, ``imgsz``, ``task``, ``kpt_shape``, ``stride``,
  ``batch``). The ``task`` (detect when absent) and the output shapes pick the decoder (see
  :mod:`visionserve.models.autospec_tasks`): ``[B, 4 + C, N]`` is YOLOv8/YOLO11, ``[B, N, 5 + C]``
  YOLOv5, segment, pose and classify exports their own layouts (RGB, pixels / 255, letterbox but for
  classifiers); ``[B, A * (5 + C), H, W]`` is a Tiny YOLOv2 region output, read as the ONNX model
  zoo's (5 anchors, VOC for 125 channels or COCO for 425; stretch, RGB, raw 0-255 pixels).
* ``.cfg`` / ``.weights``: a Darknet pair (the other file has the same stem), run by OpenCV DNN;
  input size from the cfg's ``[net]`` section, stretch, RGB, pixels / 255; labels from a
  ``<stem>.names``, ``coco.names`` or ``obj.names`` file beside it, else ``class_<id>``.
* ``.pb``: a TF Object Detection API SSD frozen graph with its ``<stem>.pbtxt`` beside it, run by
  OpenCV DNN (300x300, stretch, RGB, raw pixels); labels from ``<stem>.txt`` or ``labels.txt``
  beside it, else the TF-OD COCO label map.

Everything that cannot be inferred is a :class:`~visionserve.errors.ModelSpecError` naming the file;
write a ``model.yaml`` for such models.
"""

from __future__ import annotations

import ast
import re
from importlib import resources
from pathlib import Path

from visionserve.backends.base import TensorInfo
from visionserve.core.geometry import ResizeMode
from visionserve.decoders.yolo_region import COCO_TINY_YOLOV2_ANCHORS, VOC_TINY_YOLOV2_ANCHORS
from visionserve.errors import ModelSpecError
from visionserve.models.autospec_tasks import YOLO_THRESHOLDS, Head, ultralytics_head
from visionserve.models.labels import read_labels_file
from visionserve.models.spec import (
    BackendKind,
    ColorOrder,
    DecoderSpec,
    InputSpec,
    ModelFiles,
    ModelSpec,
    OutputLayout,
    Task,
    Thresholds,
    spec_from_mapping,
)

VOC_LABELS = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_REGION_ANCHORS = {20: VOC_TINY_YOLOV2_ANCHORS, 80: COCO_TINY_YOLOV2_ANCHORS}
_DARKNET_LABEL_FILES = ("{stem}.names", "coco.names", "obj.names")
Shape = tuple[int | None, ...]


def spec_for_file(path: Path) -> ModelSpec:
    """The inferred spec of the bare model file ``path`` (``.onnx``, ``.cfg``, ``.weights``, ``.pb``).

    Raises :class:`ModelSpecError` naming the file when something cannot be inferred or a companion
    file is missing, and :class:`~visionserve.errors.ModelLoadError` when ONNX Runtime rejects an
    ``.onnx`` file.
    """
    if not path.is_file():
        raise ModelSpecError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _onnx_spec(path)
    if suffix in {".cfg", ".weights"}:
        return _darknet_spec(path)
    if suffix == ".pb":
        return _tf_ssd_spec(path)
    raise ModelSpecError(f"{path}: cannot infer a spec for {suffix!r} files; use .onnx, .cfg/.weights or .pb")


def model_name(path: Path) -> str:
    """A valid spec name from the file's stem (invalid characters become ``-``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip("._-")[:64]
    return name or "model"


def _make(path: Path, **fields: object) -> ModelSpec:
    """Validate the inferred fields; a value out of range is a :class:`ModelSpecError` naming ``path``."""
    return spec_from_mapping({"name": model_name(path), **fields}, f"{path} (inferred spec)", path.parent)


def _companion(path: Path, suffix: str, what: str) -> Path:
    other = path.with_suffix(suffix)
    if not other.is_file():
        raise ModelSpecError(f"{path}: {what} {other.name} not found beside it")
    return other


# --- ONNX ----------------------------------------------------------------------------------------


def parse_names(raw: str | None, source: Path) -> dict[int, str] | None:
    """Ultralytics' ``names`` metadata (a Python dict literal, or a list) as id -> name."""
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelSpecError(f"{source}: metadata 'names' is not a dict or list literal: {raw[:80]!r}") from exc
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not all(isinstance(k, int) for k in value):
        raise ModelSpecError(f"{source}: metadata 'names' must map class ids to names, got {raw[:80]!r}")
    return {int(k): str(v) for k, v in value.items()}


def _imgsz(raw: str | None, source: Path) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` metadata (``"[h, w]"`` or ``"640"``) as ``(height, width)``."""
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0], value[1]
    raise ModelSpecError(f"{source}: metadata 'imgsz' must be [height, width], got {raw[:40]!r}")


def _input_spec(
    info: TensorInfo, imgsz: tuple[int, int] | None, resize: ResizeMode, scale: float, source: Path
) -> InputSpec:
    """The input spec from the input tensor (``[B, 3, H, W]`` or ``[B, H, W, 3]``) and ``imgsz``."""
    shape = info.shape
    if len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise ModelSpecError(f"{source}: input {info.name!r} must be [B, 3, H, W] or [B, H, W, 3], got {shape}")
    layout = "nchw" if shape[1] == 3 else "nhwc"
    height, width = shape[2:4] if layout == "nchw" else shape[1:3]
    if (height is None or width is None) and imgsz is not None:
        height, width = imgsz
    if height is None or width is None:
        raise ModelSpecError(f"{source}: input size unknown (dynamic {shape}, no 'imgsz' metadata); write a model.yaml")
    if info.dtype not in {"float32", "float16", "uint8"}:
        raise ModelSpecError(f"{source}: input dtype {info.dtype!r} is not supported (float32, float16, uint8)")
    return InputSpec(
        width=width,
        height=height,
        resize=resize,
        color=ColorOrder.RGB,
        scale=scale,
        layout=layout,
        dtype=info.dtype,
        fixed_batch=shape[0],
    )


def _region_decoder(shape: Shape, classes: int | None, source: Path) -> DecoderSpec:
    channels = shape[1]
    found = channels // 5 - 5 if channels is not None and channels % 5 == 0 else None
    if found not in _REGION_ANCHORS or (classes is not None and classes != found):
        raise ModelSpecError(
            f"{source}: output shape {shape} is a YOLOv2 region output, but only Tiny YOLOv2 with 5 anchors and "
            f"20 (VOC) or 80 (COCO) classes has known anchors; write a model.yaml with decoder.anchors"
        )
    return DecoderSpec(layout=OutputLayout.YOLO_REGION, anchors=_REGION_ANCHORS[found], num_classes=found)


def _read_onnx(path: Path) -> tuple[dict[str, str], TensorInfo, list[Shape]]:
    from visionserve.backends.onnxruntime import OnnxRuntimeSession

    session = OnnxRuntimeSession(path)
    try:
        return dict(session.metadata), session.inputs[0], session.output_shapes
    finally:
        session.close()


def _onnx_spec(path: Path) -> ModelSpec:
    metadata, info, outputs = _read_onnx(path)
    if metadata.get("end2end", "").lower() == "true":
        raise ModelSpecError(f"{path}: end-to-end exports (NMS inside the model) are not supported; export nms=False")
    names = parse_names(metadata.get("names"), path)
    classes = max(names) + 1 if names else None
    task = metadata.get("task", Task.DETECT.value)
    if task == Task.DETECT and outputs and len(outputs[0]) == 4:
        head = Head(Task.DETECT, _region_decoder(outputs[0], classes, path), Thresholds(conf=0.25, iou=0.45))
        resize, scale = ResizeMode.STRETCH, 1.0
    else:
        head = ultralytics_head(task, outputs, classes, metadata, path)
        resize, scale = head.resize, 1 / 255
    decoder = head.decoder
    input_spec = _input_spec(info, _imgsz(metadata.get("imgsz"), path), resize, scale, path)
    count = decoder.num_classes or 0
    default = VOC_LABELS if decoder.layout is OutputLayout.YOLO_REGION and count == len(VOC_LABELS) else ()
    labels = names or default or tuple(f"class_{i}" for i in range(max(count, 1)))
    return _make(
        path,
        task=head.task,
        backend=BackendKind.ONNXRUNTIME,
        description=metadata.get("description", f"{decoder.layout} model inferred from {path.name}"),
        files=ModelFiles(model=Path(path.name)),
        input=input_spec,
        decoder=decoder,
        labels=labels,
        keypoints=head.keypoints,
        thresholds=head.thresholds,
    )


# --- Darknet -------------------------------------------------------------------------------------


def parse_darknet_cfg(text: str) -> list[tuple[str, dict[str, str]]]:
    """A Darknet ``.cfg`` as ``[(section, {key: value})]`` in file order (comments dropped)."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1].strip().lower(), {}))
        elif "=" in line and sections:
            key, _, value = line.partition("=")
            sections[-1][1][key.strip()] = value.strip()
    return sections


def _cfg_int(section: dict[str, str], key: str, cfg: Path, where: str) -> int:
    try:
        value = int(section[key])
    except KeyError:
        raise ModelSpecError(f"{cfg}: [{where}] has no '{key}='") from None
    except ValueError:
        raise ModelSpecError(f"{cfg}: [{where}] '{key}={section[key]}' is not an integer") from None
    if value <= 0:
        raise ModelSpecError(f"{cfg}: [{where}] '{key}={value}' must be positive")
    return value


def _darknet_geometry(cfg: Path) -> tuple[int, int, int]:
    """``(width, height, classes)`` from the ``[net]`` section and the last YOLO layer."""
    try:
        sections = parse_darknet_cfg(cfg.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise ModelSpecError(f"{cfg}: cannot read: {exc.strerror}") from exc
    net = next((values for name, values in sections if name in {"net", "network"}), None)
    if net is None:
        raise ModelSpecError(f"{cfg}: no [net] section; is this a Darknet .cfg file?")
    heads = [(name, values) for name, values in sections if name in {"yolo", "region"}]
    if not heads:
        raise ModelSpecError(f"{cfg}: no [yolo] or [region] layer; only Darknet YOLO detectors are supported")
    name, head = heads[-1]
    return _cfg_int(net, "width", cfg, "net"), _cfg_int(net, "height", cfg, "net"), _cfg_int(head, "classes", cfg, name)


def _darknet_labels(cfg: Path, classes: int) -> Path | tuple[str, ...]:
    for pattern in _DARKNET_LABEL_FILES:
        candidate = cfg.parent / pattern.format(stem=cfg.stem)
        if candidate.is_file():
            found = len(read_labels_file(candidate))
            if found != classes:
                raise ModelSpecError(f"{candidate}: {found} labels, but {cfg.name} has classes={classes}")
            return Path(candidate.name)
    return tuple(f"class_{i}" for i in range(classes))


def _darknet_spec(path: Path) -> ModelSpec:
    if path.suffix.lower() == ".cfg":
        cfg, weights = path, _companion(path, ".weights", "Darknet weights")
    else:
        cfg, weights = _companion(path, ".cfg", "Darknet config"), path
    width, height, classes = _darknet_geometry(cfg)
    return _make(
        path,
        backend=BackendKind.OPENCV_DNN,
        description=f"Darknet YOLO inferred from {cfg.name}",
        files=ModelFiles(model=Path(weights.name), config=Path(cfg.name)),
        input=InputSpec(width=width, height=height, resize=ResizeMode.STRETCH, color=ColorOrder.RGB, scale=1 / 255),
        decoder=DecoderSpec(layout=OutputLayout.DARKNET_YOLO, num_classes=classes),
        labels=_darknet_labels(cfg, classes),
        thresholds=YOLO_THRESHOLDS,
    )


# --- TensorFlow Object Detection API -------------------------------------------------------------


def _tf_ssd_spec(path: Path) -> ModelSpec:
    config = _companion(path, ".pbtxt", "OpenCV graph description")
    beside = [path.with_suffix(".txt"), path.parent / "labels.txt"]
    found = next((p for p in beside if p.is_file()), None)
    labels = found or Path(str(resources.files("visionserve.data") / "coco_tfod_labels.txt"))
    return _make(
        path,
        backend=BackendKind.OPENCV_DNN,
        description=f"TF Object Detection API SSD inferred from {path.name}",
        files=ModelFiles(model=Path(path.name), config=Path(config.name)),
        input=InputSpec(width=300, height=300, resize=ResizeMode.STRETCH, color=ColorOrder.RGB),
        decoder=DecoderSpec(layout=OutputLayout.TF_SSD, nms=False),
        labels=labels,
    )
