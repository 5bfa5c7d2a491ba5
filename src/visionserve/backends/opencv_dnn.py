"""OpenCV DNN sessions: TF frozen graphs (+ .pbtxt), Darknet (.cfg + .weights) and ONNX."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from visionserve.backends.base import TensorInfo
from visionserve.errors import InferenceError, ModelLoadError
from visionserve.types import AnyArray

_BACKENDS = {
    "default": cv2.dnn.DNN_BACKEND_DEFAULT,
    "opencv": cv2.dnn.DNN_BACKEND_OPENCV,
    "cuda": cv2.dnn.DNN_BACKEND_CUDA,
    "openvino": cv2.dnn.DNN_BACKEND_INFERENCE_ENGINE,
}
_TARGETS = {
    "cpu": cv2.dnn.DNN_TARGET_CPU,
    "cuda": cv2.dnn.DNN_TARGET_CUDA,
    "cuda_fp16": cv2.dnn.DNN_TARGET_CUDA_FP16,
    "opencl": cv2.dnn.DNN_TARGET_OPENCL,
    "opencl_fp16": cv2.dnn.DNN_TARGET_OPENCL_FP16,
}


def _select_gpu(backend: str, target: str, device_id: int) -> None:
    """Make CUDA device ``device_id`` current for this thread when CUDA is asked for; an OpenCV build
    without CUDA (or without that device) is an error, not a silent fall-back to the CPU."""
    if backend != "cuda" and not target.startswith("cuda"):
        return
    available = cv2.cuda.getCudaEnabledDeviceCount()
    if device_id >= available:
        raise ModelLoadError(
            f"OpenCV DNN backend/target {backend!r}/{target!r} asks for CUDA device {device_id}, but this "
            f"OpenCV build sees {available} CUDA device(s) (opencv-python-headless has no CUDA: build OpenCV "
            "with CUDA, or use the onnxruntime backend with onnxruntime-gpu)"
        )
    cv2.cuda.setDevice(device_id)


def _read_net(model: Path, config: Path | None) -> cv2.dnn.Net:
    suffix = model.suffix.lower()
    if suffix == ".pb":
        return cv2.dnn.readNetFromTensorflow(str(model), str(config) if config else "")
    if suffix == ".weights":
        if config is None:
            raise ModelLoadError(f"{model}: a Darknet model needs its .cfg file (files.config)")
        return cv2.dnn.readNetFromDarknet(str(config), str(model))
    if suffix == ".onnx":
        return cv2.dnn.readNetFromONNX(str(model))
    raise ModelLoadError(f"{model}: OpenCV DNN reads .pb (+ .pbtxt), .weights (+ .cfg) and .onnx files")


class OpenCVDNNSession:
    """A ``cv2.dnn.Net`` behind the :class:`~visionserve.backends.base.Session` protocol.

    A ``cv2.dnn.Net`` holds per-call state (its input blob), so concurrent ``run`` calls on one
    session are serialized by a lock; run one session per model instance for parallelism.
    """

    def __init__(
        self,
        model: Path,
        config: Path | None = None,
        backend: str = "default",
        target: str = "cpu",
        device_id: int = 0,
    ) -> None:
        for path in (model, config):
            if path is not None and not path.is_file():
                raise ModelLoadError(f"model file not found: {path}")
        if backend not in _BACKENDS or target not in _TARGETS:
            raise ModelLoadError(
                f"unknown OpenCV DNN backend/target {backend!r}/{target!r}: "
                f"backends {sorted(_BACKENDS)}, targets {sorted(_TARGETS)}"
            )
        _select_gpu(backend, target, device_id)
        try:
            self._net = _read_net(model, config)
        except cv2.error as exc:
            raise ModelLoadError(f"OpenCV DNN cannot read {model}: {exc.msg.strip()}") from exc
        self._net.setPreferableBackend(_BACKENDS[backend])
        self._net.setPreferableTarget(_TARGETS[target])
        self._outputs = list(self._net.getUnconnectedOutLayersNames())
        self._lock = threading.Lock()

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return [TensorInfo("input", (None, 3, None, None), "float32")]

    @property
    def metadata(self) -> Mapping[str, str]:
        return {}

    def run(self, feeds: Mapping[str, AnyArray]) -> list[AnyArray]:
        if len(feeds) != 1:
            raise InferenceError(f"OpenCV DNN sessions take one input, got {len(feeds)}")
        (blob,) = feeds.values()
        with self._lock:
            try:
                self._net.setInput(np.asarray(blob, dtype=np.float32))
                outputs = self._net.forward(self._outputs)
            except cv2.error as exc:
                raise InferenceError(f"OpenCV DNN forward failed: {exc.msg.strip()}") from exc
        return list(outputs)

    def close(self) -> None:
        del self._net
