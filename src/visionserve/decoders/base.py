"""The decoder contract and registry.

A decoder is a pure function ``decode(outputs, batch_size, params) -> list[Candidates]``: it reads
the network's raw outputs for a batch and returns, per image, the boxes whose score reaches
``params.conf``, as xyxy in *network-input* pixels. Class filtering, NMS, ``max_det`` and the map
back to source pixels are done once, after decoding (``visionserve.pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from visionserve.errors import DecodeError
from visionserve.models.spec import OutputLayout
from visionserve.types import AnyArray, FloatArray, IntArray


@dataclass(frozen=True)
class DecodeParams:
    """What a decoder needs to know besides the outputs."""

    input_width: int
    input_height: int
    conf: float
    num_classes: int
    anchors: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Candidates:
    """Decoded boxes of one image before NMS: ``xyxy (N, 4) float32`` in network-input pixels,
    ``scores (N,) float32``, ``class_ids (N,) int32``."""

    xyxy: FloatArray
    scores: FloatArray
    class_ids: IntArray

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))


Decoder = Callable[[Sequence[AnyArray], int, DecodeParams], list[Candidates]]

_DECODERS: dict[OutputLayout, Decoder] = {}


def register(layout: OutputLayout) -> Callable[[Decoder], Decoder]:
    """Decorator: make ``fn`` the decoder of ``layout``."""

    def wrap(fn: Decoder) -> Decoder:
        _DECODERS[layout] = fn
        return fn

    return wrap


def get_decoder(layout: OutputLayout) -> Decoder:
    """The decoder registered for ``layout`` (importing the built-in decoder modules first)."""
    from visionserve.decoders import load_builtin

    load_builtin()
    try:
        return _DECODERS[layout]
    except KeyError:
        raise DecodeError(f"no decoder registered for output layout {layout.value!r}") from None


def cxcywh_to_xyxy(boxes: FloatArray) -> FloatArray:
    """``(N, 4)`` centre/size boxes to corner boxes."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1).astype(np.float32)


def expect_shape(array: AnyArray, ndim: int, layout: str, hint: str) -> None:
    """Raise :class:`DecodeError` unless ``array`` has ``ndim`` dimensions."""
    if array.ndim != ndim:
        raise DecodeError(f"{layout} decoder expects a {ndim}-D output {hint}, got shape {array.shape}")
