"""ONNX Runtime sessions, with the execution providers named in configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from visionserve.backends.base import TensorInfo
from visionserve.errors import InferenceError, MissingDependencyError, ModelLoadError
from visionserve.types import AnyArray

_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base dependency
        raise MissingDependencyError("ONNX Runtime is not installed: pip install 'visionserve[onnx]'") from exc
    return onnxruntime


_GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"})


def provider_options(providers: Sequence[str], device_id: int) -> list[tuple[str, dict[str, str]]]:
    """ONNX Runtime's ``providers`` argument: each provider with its options; GPU providers get
    ``device_id`` (the GPU this session runs on)."""
    return [(p, {"device_id": str(device_id)} if p in _GPU_PROVIDERS else {}) for p in providers]


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


class OnnxRuntimeSession:
    """An ``onnxruntime.InferenceSession`` behind the :class:`~visionserve.backends.base.Session`
    protocol. ``providers`` are tried in order; ones this build lacks are an error that names them.
    ``threads=0`` leaves ONNX Runtime's default intra-op thread count; ``device_id`` is the GPU of
    GPU providers."""

    def __init__(
        self,
        model: Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
        device_id: int = 0,
    ) -> None:
        ort = _import_ort()
        if not model.is_file():
            raise ModelLoadError(f"model file not found: {model}")
        unavailable = [p for p in providers if p not in ort.get_available_providers()]
        if unavailable:
            raise ModelLoadError(
                f"execution providers {unavailable} are not available in this onnxruntime build "
                f"(available: {ort.get_available_providers()})"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(model), sess_options=options, providers=provider_options(providers, device_id)
            )
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {model}: {exc}") from exc
        self._inputs = [
            TensorInfo(i.name, _dims(i.shape), _DTYPES.get(i.type, i.type)) for i in self._session.get_inputs()
        ]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    @property
    def inputs(self) -> Sequence[TensorInfo]:
        return self._inputs

    @property
    def output_shapes(self) -> list[tuple[int | None, ...]]:
        return [_dims(o.shape) for o in self._session.get_outputs()]

    @property
    def metadata(self) -> Mapping[str, str]:
        return self._metadata

    def run(self, feeds: Mapping[str, AnyArray]) -> list[AnyArray]:
        try:
            return list(self._session.run(self._output_names, dict(feeds)))
        except Exception as exc:
            raise InferenceError(f"ONNX Runtime inference failed: {exc}") from exc

    def close(self) -> None:
        del self._session
