"""The decoder contract and registry.

A decoder is a pure function ``decode(outputs, batch_size, params) -> list[Decoded]``: it reads the
network's raw outputs for a batch and returns one result per image:

* :class:`Candidates` for box tasks (detect, segment, pose): the boxes whose score reaches
  ``params.conf``, as xyxy in *network-input* pixels, with keypoints (pose) in the same pixels and a
  :class:`MaskSource` (segment) that builds masks only for the candidates that survive NMS;
* :class:`ClassScores` for classify: one score per class.

Class filtering, NMS, ``max_det``, ``top_k`` and the map back to source pixels are done once, after
decoding (``visionserve.pipeline``). Decoders are registered by *name* with the task they serve
(built-in :class:`~visionserve.models.spec.OutputLayout` names carry theirs), so that a plugin module
can add a layout (``@register("my_layout", Task.DETECT)``) and a ``model.yaml`` naming it is checked
against its task when the model loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import numpy as np

from visionserve.core.masks import InstanceMasks
from visionserve.errors import DecodeError, ModelSpecError
from visionserve.models.spec import OutputLayout, Task
from visionserve.types import AnyArray, FloatArray, IntArray


@dataclass(frozen=True)
class DecodeParams:
    """What a decoder needs to know besides the outputs."""

    input_width: int
    input_height: int
    conf: float
    num_classes: int
    anchors: tuple[tuple[float, float], ...] = ()
    #: Keypoints per instance for pose layouts (0 when unknown: the decoder infers it).
    num_keypoints: int = 0
    #: ``none``, ``softmax`` or ``sigmoid``: what turns a classifier's outputs into scores.
    activation: str = "none"


class MaskSource(Protocol):
    """The masks of a :class:`Candidates`, built on demand for the rows NMS kept."""

    def select(self, rows: IntArray) -> InstanceMasks:
        """Masks of candidate rows ``rows`` (in that order), regions in network-input pixels."""
        ...


@dataclass(frozen=True)
class Candidates:
    """Decoded boxes of one image before NMS: ``xyxy (N, 4) float32`` in network-input pixels,
    ``scores (N,) float32``, ``class_ids (N,) int32``; ``keypoints (N, K, 3) float32`` (x, y, score in
    network-input pixels) for pose layouts; ``masks`` for segment layouts."""

    xyxy: FloatArray
    scores: FloatArray
    class_ids: IntArray
    keypoints: FloatArray | None = None
    masks: MaskSource | None = None

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))


@dataclass(frozen=True)
class ClassScores:
    """Scores of one image for a classify model: ``scores (C,) float32``, class ``i`` at index ``i``."""

    scores: FloatArray


Decoded: TypeAlias = Candidates | ClassScores
Decoder = Callable[[Sequence[AnyArray], int, DecodeParams], Sequence[Decoded]]


@dataclass(frozen=True)
class Registered:
    """A decoder and the task its results answer."""

    decode: Decoder
    task: Task


_DECODERS: dict[str, Registered] = {}


def register(name: str, task: Task | None = None) -> Callable[[Decoder], Decoder]:
    """Decorator: make ``fn`` the decoder of layout ``name``, answering ``task`` (for a built-in
    :class:`OutputLayout`, its own task). Registering a name twice replaces the first (a plugin may
    override a built-in layout on purpose)."""
    if task is None:
        if not isinstance(name, OutputLayout):
            raise TypeError(f"register({name!r}) needs the task its results answer")
        task = name.task
    answers = task

    def wrap(fn: Decoder) -> Decoder:
        _DECODERS[str(name)] = Registered(fn, answers)
        return fn

    return wrap


def registered_layouts() -> dict[str, Task]:
    """Every registered layout name and its task (the built-in ones included)."""
    from visionserve.decoders import load_builtin

    load_builtin()
    return {name: entry.task for name, entry in sorted(_DECODERS.items())}


def get_decoder(layout: str, task: Task | None = None, source: str = "") -> Decoder:
    """The decoder registered for ``layout``, checked to answer ``task`` when given.

    Raises :class:`ModelSpecError` (naming ``source``, the model's file) for an unknown layout or a
    layout of another task.
    """
    from visionserve.decoders import load_builtin

    load_builtin()
    where = f"{source}: " if source else ""
    entry = _DECODERS.get(str(layout))
    if entry is None:
        known = ", ".join(sorted(_DECODERS))
        raise ModelSpecError(f"{where}field 'decoder.layout': unknown layout {str(layout)!r} (known: {known})")
    if task is not None and entry.task is not task:
        fitting = ", ".join(sorted(n for n, e in _DECODERS.items() if e.task is task)) or "none"
        raise ModelSpecError(
            f"{where}field 'decoder.layout': layout {str(layout)!r} gives {entry.task.value} results, "
            f"but the model's task is {task.value} (layouts for {task.value}: {fitting})"
        )
    return entry.decode


def cxcywh_to_xyxy(boxes: FloatArray) -> FloatArray:
    """``(N, 4)`` centre/size boxes to corner boxes."""
    half = boxes[..., 2:4] / 2
    return np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1).astype(np.float32)


def expect_shape(array: AnyArray, ndim: int, layout: str, hint: str) -> None:
    """Raise :class:`DecodeError` unless ``array`` has ``ndim`` dimensions."""
    if array.ndim != ndim:
        raise DecodeError(f"{layout} decoder expects a {ndim}-D output {hint}, got shape {array.shape}")
