"""LiteRT (TensorFlow Lite) sessions on ``ai-edge-litert``: ``.tflite`` models, NHWC input.

**Quantisation** is handled here, so callers feed and receive plain arrays:

* An input fed as ``uint8`` pixels (``input.dtype: uint8`` in the model.yaml) to a ``uint8`` input
  is passed as it is, whatever the tensor's scale and zero point: a quantised image model takes the
  pixel itself as its quantised value, and its scale/zero point describe the normalisation the float
  model applied (EfficientNet-Lite3: ``(p - 130) * 0.0127``; a ``[0, 1]`` model: ``p / 255``, scale
  1/255; raw: no quantisation). To an ``int8`` input, pixels go as ``p - 128``: the same
  convention with the zero point shifted into int8's range.
* An input fed as floats (the model.yaml normalises) to an integer input is quantised with the
  tensor's parameters, ``round(x / scale + zero_point)`` clipped to the type's range; an integer
  input without parameters gets the values rounded and clipped.
* A quantised output is dequantised to float32, ``(q - zero_point) * scale``; float16 outputs become
  float32; other outputs are returned as they are. Per-channel parameters apply along their axis.

**Batches**: the input tensor is resized to the batch (``resize_tensor_input`` and
``allocate_tensors``, only when the batch size changes). A model that cannot take another batch
(its runtime refuses, or its outputs keep their first dimension) runs image by image at its own
batch size instead, outputs concatenated along the first axis; this is found out on the first
other batch and remembered. ``inputs`` reports the batch dimension as None for that reason.

**Threads**: the interpreter fixes its thread count at construction (``num_threads``), so it cannot
follow the thread governor's solo/parallel switch the way OpenCV does. The serving layer passes each
instance its share of the cores (see :func:`visionserve.serving.manager.session_threads`); ``0``
here means every core of the process (a lone caller such as ``visionserve detect``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from visionserve.backends.base import TensorInfo
from visionserve.errors import InferenceError, MissingDependencyError, ModelLoadError
from visionserve.types import AnyArray, FloatArray

#: Feeds of these types are image pixels (see the module docstring).
_PIXEL_DTYPE = np.dtype(np.uint8)


def _import_interpreter() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise MissingDependencyError("LiteRT is not installed: pip install ai-edge-litert") from exc
    return Interpreter


def process_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Quantization:
    """A tensor's affine quantisation, ``real = (q - zero_point) * scale``: one scale and zero point,
    or one per index of ``axis`` (per-channel)."""

    scale: FloatArray
    zero_point: AnyArray
    axis: int = 0

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> Quantization | None:
        """The parameters of a tensor as ``get_input_details()`` describes it; None when the tensor
        is not quantised (no scales, or scales of 0)."""
        params = details.get("quantization_parameters") or {}
        scale = np.asarray(params.get("scales", []), dtype=np.float32)
        if scale.size == 0 or not np.any(scale):
            return None
        zero = np.asarray(params.get("zero_points", np.zeros_like(scale)), dtype=np.int64)
        return cls(scale, zero, int(params.get("quantized_dimension", 0)))

    def along(self, values: AnyArray, array: AnyArray) -> npt.NDArray[np.float64]:
        """``array`` as float64, shaped to broadcast along ``axis`` of ``values`` (a scalar when
        it holds one value)."""
        exact = np.asarray(array, dtype=np.float64)
        if exact.size == 1:
            return exact.reshape(())
        shape = [1] * values.ndim
        shape[self.axis] = exact.size
        return exact.reshape(shape)


def quantize(values: AnyArray, quant: Quantization | None, dtype: np.dtype[Any]) -> AnyArray:
    """``values`` as integers of ``dtype``: ``round(x / scale + zero_point)`` (just ``round(x)``
    without ``quant``), clipped to the range of ``dtype``. Rounds half to even, like numpy."""
    real = np.asarray(values, dtype=np.float64)
    if quant is not None:
        real = real / quant.along(real, quant.scale) + quant.along(real, quant.zero_point)
    limits = np.iinfo(dtype)
    return np.clip(np.rint(real), limits.min, limits.max).astype(dtype)


def dequantize(values: AnyArray, quant: Quantization) -> FloatArray:
    """``(q - zero_point) * scale`` as float32."""
    shifted = values.astype(np.float64) - quant.along(values, quant.zero_point)
    real: FloatArray = (shifted * quant.along(values, quant.scale)).astype(np.float32)
    return real


def to_input(values: AnyArray, dtype: np.dtype[Any], quant: Quantization | None) -> AnyArray:
    """What a tensor of ``dtype`` (quantised by ``quant``) gets for the feed ``values``
    (the policy of the module docstring)."""
    if values.dtype == dtype:
        return values
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    if values.dtype == _PIXEL_DTYPE and dtype == np.int8:
        return (values.astype(np.int16) - 128).astype(np.int8)
    return quantize(values, quant, dtype)


def from_output(values: AnyArray, quant: Quantization | None) -> AnyArray:
    """An output as callers get it: dequantised float32, float32 for float16, else unchanged."""
    if quant is not None and np.issubdtype(values.dtype, np.integer):
        return dequantize(values, quant)
    if values.dtype == np.float16:
        return values.astype(np.float32)
    return values


@dataclass(frozen=True)
class _Tensor:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    quant: Quantization | None

    @classmethod
    def of(cls, details: Mapping[str, Any]) -> _Tensor:
        shape = tuple(int(d) for d in details["shape"])
        quant = Quantization.from_details(details)
        return cls(str(details["name"]), int(details["index"]), shape, np.dtype(details["dtype"]), quant)


class LiteRTSession:
    """A LiteRT ``Interpreter`` behind the :class:`~visionserve.backends.base.Session` protocol.

    ``threads``: the interpreter's thread count (0: every core of the process; the attribute
    ``threads`` holds the count applied). Calls to ``run`` are
    serialized by a lock (the interpreter holds its tensors between calls); run one session per model
    instance for parallelism. Raises :class:`ModelLoadError` for a missing or unreadable model and
    :class:`MissingDependencyError` without ``ai-edge-litert``.
    """

    def __init__(self, model: Path, threads: int = 0) -> None:
        interpreter_class = _import_interpreter()
        if not model.is_file():
            raise ModelLoadError(f"model file not found: {model}")
        if threads < 0:
            raise ModelLoadError(f"LiteRT thread count must be 0 (every core) or more, got {threads}")
        self.threads = threads or process_cores()
        try:
            self._interpreter = interpreter_class(model_path=str(model), num_threads=self.threads)
            self._interpreter.allocate_tensors()
            self._inputs = [_Tensor.of(d) for d in self._interpreter.get_input_details()]
            self._outputs = [_Tensor.of(d) for d in self._interpreter.get_output_details()]
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT cannot load {model}: {exc}") from exc
        self._base_batch = self._inputs[0].shape[0] if self._inputs and self._inputs[0].shape else 1
        self._batch = self._base_batch
        self._resizable: bool | None = None  # unknown until a batch other than the model's own is run
        self._lock = threading.Lock()

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return [TensorInfo(t.name, (None, *t.shape[1:]), t.dtype.name) for t in self._inputs]

    @property
    def metadata(self) -> Mapping[str, str]:
        return {}

    def run(self, feeds: Mapping[str, AnyArray]) -> list[AnyArray]:
        """One forward pass over a batch: every feed is ``(B, ...)`` with the same ``B``. Raises
        :class:`InferenceError` for missing, unknown or misshapen feeds and for runtime failures."""
        arrays = self._check_feeds(feeds)
        batch = int(arrays[0].shape[0])
        with self._lock:
            if batch == self._batch or (self._resizable is not False and self._resize(batch)):
                return self._invoke(arrays)
            return self._run_in_parts(arrays, batch)

    def _check_feeds(self, feeds: Mapping[str, AnyArray]) -> list[AnyArray]:
        names = [t.name for t in self._inputs]
        if sorted(feeds) != sorted(names):
            raise InferenceError(f"LiteRT model takes inputs {names}, got {sorted(feeds)}")
        arrays = [np.asarray(feeds[t.name]) for t in self._inputs]
        for tensor, array in zip(self._inputs, arrays, strict=True):
            if array.shape[1:] != tensor.shape[1:] or array.shape[0] < 1:
                expected = ("B", *tensor.shape[1:])
                raise InferenceError(f"LiteRT input {tensor.name!r} must have shape {expected}, got {array.shape}")
        if len({array.shape[0] for array in arrays}) != 1:
            raise InferenceError(f"LiteRT inputs have different batch sizes: {[a.shape[0] for a in arrays]}")
        return arrays

    def _resize(self, batch: int) -> bool:
        """Resize every input to ``batch``; False (and the model's own batch restored) when the
        runtime refuses or an output does not follow the batch."""
        try:
            self._allocate(batch)
            outputs = self._interpreter.get_output_details()
            followed = all(len(d["shape"]) and int(d["shape"][0]) == batch for d in outputs)
        except (ValueError, RuntimeError):
            followed = False
        self._resizable = followed
        if not followed:
            self._allocate_or_fail(self._base_batch)
        return followed

    def _allocate(self, batch: int) -> None:
        try:
            for tensor in self._inputs:
                self._interpreter.resize_tensor_input(tensor.index, [batch, *tensor.shape[1:]], strict=False)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            self._batch = -1  # unknown: the next run allocates again
            raise
        self._batch = batch

    def _run_in_parts(self, arrays: list[AnyArray], batch: int) -> list[AnyArray]:
        """Image by image (in slices of the model's own batch size), outputs concatenated."""
        size = self._base_batch
        if batch % size:
            raise InferenceError(f"this LiteRT model runs batches of {size} only, got {batch} images")
        if self._batch != size:
            self._allocate_or_fail(size)
        parts = [self._invoke([a[i : i + size] for a in arrays]) for i in range(0, batch, size)]
        return [np.concatenate([part[k] for part in parts]) for k in range(len(self._outputs))]

    def _allocate_or_fail(self, batch: int) -> None:
        try:
            self._allocate(batch)
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"LiteRT cannot allocate a batch of {batch}: {exc}") from exc

    def _invoke(self, arrays: list[AnyArray]) -> list[AnyArray]:
        interpreter = self._interpreter
        try:
            for tensor, array in zip(self._inputs, arrays, strict=True):
                interpreter.set_tensor(tensor.index, to_input(array, tensor.dtype, tensor.quant))
            interpreter.invoke()
            return [from_output(interpreter.get_tensor(t.index), t.quant) for t in self._outputs]
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"LiteRT inference failed: {exc}") from exc

    def close(self) -> None:
        del self._interpreter
