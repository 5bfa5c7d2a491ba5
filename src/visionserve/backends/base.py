"""The backend protocol: a session runs named numpy inputs and returns numpy outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from visionserve.types import AnyArray


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the runtime describes it; unknown dimensions are None."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


class Session(Protocol):
    """One loaded network. Not safe to share across concurrent callers unless it says so:
    visionserve gives each model instance its own session."""

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        """The network's inputs (an OpenCV DNN net may not know shapes: they are then None)."""
        ...

    @property
    def metadata(self) -> Mapping[str, str]:
        """Free-form metadata stored in the model file (e.g. Ultralytics' ``names``, ``imgsz``)."""
        ...

    def run(self, feeds: Mapping[str, AnyArray]) -> list[AnyArray]:
        """Run one forward pass. Raises :class:`~visionserve.errors.InferenceError`."""
        ...

    def close(self) -> None:
        """Release the runtime's resources; the session is unusable afterwards."""
        ...
