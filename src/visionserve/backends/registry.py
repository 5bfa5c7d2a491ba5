"""Open the session a model spec asks for: one entry per :class:`BackendKind`."""

from __future__ import annotations

from collections.abc import Callable

from visionserve.backends.base import Session
from visionserve.errors import ModelLoadError
from visionserve.models.spec import BackendKind, ModelSpec


def _opencv(spec: ModelSpec) -> Session:
    from visionserve.backends.opencv_dnn import OpenCVDNNSession

    files = spec.network[0]
    config = spec.path(files.config) if files.config else None
    runtime = spec.runtime
    return OpenCVDNNSession(
        spec.path(files.model), config, runtime.opencv_backend, runtime.opencv_target, runtime.device_id
    )


def _onnxruntime(spec: ModelSpec) -> Session:
    from visionserve.backends.onnxruntime import OnnxRuntimeSession

    runtime = spec.runtime
    return OnnxRuntimeSession(spec.path(spec.network[0].model), runtime.providers, runtime.threads, runtime.device_id)


def _litert(spec: ModelSpec) -> Session:
    from visionserve.backends.litert import LiteRTSession

    return LiteRTSession(spec.path(spec.network[0].model), spec.runtime.threads)


_OPENERS: dict[BackendKind, Callable[[ModelSpec], Session]] = {
    BackendKind.OPENCV_DNN: _opencv,
    BackendKind.ONNXRUNTIME: _onnxruntime,
    BackendKind.LITERT: _litert,
}


def open_session(spec: ModelSpec) -> Session:
    """Load the network of ``spec`` with its backend. Raises :class:`ModelLoadError`."""
    opener = _OPENERS.get(spec.backend)
    if opener is None:
        raise ModelLoadError(f"backend {spec.backend.value!r} has no network session (plugins load themselves)")
    return opener(spec)
