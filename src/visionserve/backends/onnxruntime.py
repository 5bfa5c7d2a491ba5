"""ONNX Runtime sessions, with the execution providers named in configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
        raise MissingDependencyError("ONNX Runtime is not installed: pip install onnxruntime==1.32.0") from exc
    return onnxruntime


_GPU_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"})
_CPU_PROVIDER = "CPUExecutionProvider"

#: Builds the runtime session: ``(model path, session options, providers with their options)``.
SessionFactory = Callable[[str, Any, list[tuple[str, dict[str, str]]]], Any]


def _ort_session(model: str, options: Any, providers: list[tuple[str, dict[str, str]]]) -> Any:
    """``onnxruntime.InferenceSession`` without its fall-back: by default ONNX Runtime retries on the
    CPU when a provider fails to initialise or fails during a run, which would quietly serve a GPU
    model on the CPU (see :meth:`OnnxRuntimeSession.__init__` for the check of the effective providers)."""
    session = _import_ort().InferenceSession(model, sess_options=options, providers=providers, enable_fallback=0)
    session.disable_fallback()
    return session


def _unavailable_error(unavailable: Sequence[str], available: Sequence[str], version: str) -> ModelLoadError:
    message = (
        f"execution providers {list(unavailable)} are not available in this onnxruntime build "
        f"(available: {list(available)})"
    )
    if not any(p in _GPU_PROVIDERS for p in unavailable):
        return ModelLoadError(message)
    return MissingDependencyError(
        f"{message}; GPU providers need the onnxruntime-gpu package in place of onnxruntime "
        f"(they install the same module): pip uninstall onnxruntime && pip install onnxruntime-gpu=={version}"
    )


def provider_options(providers: Sequence[str], device_id: int) -> list[tuple[str, dict[str, str]]]:
    """ONNX Runtime's ``providers`` argument: each provider with its options; GPU providers get
    ``device_id`` (the GPU this session runs on)."""
    return [(p, {"device_id": str(device_id)} if p in _GPU_PROVIDERS else {}) for p in providers]


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


class OnnxRuntimeSession:
    """An ``onnxruntime.InferenceSession`` behind the :class:`~visionserve.backends.base.Session`
    protocol. ``providers`` are tried in order; ones this build lacks are an error that names them
    (:class:`MissingDependencyError` naming ``onnxruntime-gpu`` for GPU providers). A provider that
    the session does not end up using (it failed to initialise: missing CUDA libraries, a wrong
    ``device_id``) is a :class:`ModelLoadError`, never a silent fall-back to the CPU; a provider
    failing during a run is an :class:`InferenceError`, not a retry on the CPU.
    ``threads=0`` leaves ONNX Runtime's default intra-op thread count; ``device_id`` is the GPU of
    GPU providers. ``create_session`` and ``available_providers`` default to ONNX Runtime's (tests
    inject others)."""

    def __init__(
        self,
        model: Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
        device_id: int = 0,
        *,
        create_session: SessionFactory = _ort_session,
        available_providers: Callable[[], list[str]] | None = None,
    ) -> None:
        ort = _import_ort()
        if not model.is_file():
            raise ModelLoadError(f"model file not found: {model}")
        available = (available_providers or ort.get_available_providers)()
        unavailable = [p for p in providers if p not in available]
        if unavailable:
            raise _unavailable_error(unavailable, available, ort.__version__)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = create_session(str(model), options, provider_options(providers, device_id))
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {model}: {exc}") from exc
        _check_effective(model, providers, list(self._session.get_providers()))
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

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on (those asked for, in order)."""
        return list(self._session.get_providers())

    def run(self, feeds: Mapping[str, AnyArray]) -> list[AnyArray]:
        try:
            return list(self._session.run(self._output_names, dict(feeds)))
        except Exception as exc:
            raise InferenceError(f"ONNX Runtime inference failed: {exc}") from exc

    def close(self) -> None:
        del self._session


def _check_effective(model: Path, asked: Sequence[str], effective: Sequence[str]) -> None:
    """Raise :class:`ModelLoadError` when a provider asked for (other than the CPU, which is only
    where nodes that a GPU provider cannot run are placed) is not among the session's effective ones."""
    dropped = [p for p in asked if p != _CPU_PROVIDER and p not in effective]
    if dropped:
        raise ModelLoadError(
            f"ONNX Runtime could not start {dropped} for {model} (the session would run on {list(effective)}): "
            "the provider failed to initialise (missing CUDA/cuDNN libraries, or no such device_id); "
            "refusing to fall back to the CPU silently"
        )
