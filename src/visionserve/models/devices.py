"""Putting a model on a device: the runtime options that run a spec on ``cpu`` or ``cuda:N``."""

from __future__ import annotations

from visionserve.models.spec import BackendKind, ModelSpec

_GPU_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def spec_on_device(spec: ModelSpec, device: str) -> ModelSpec:
    """``spec`` with runtime options that put it on ``device`` (``cpu`` or ``cuda:N``).

    CUDA: ONNX Runtime gets the CUDA execution provider first on GPU ``N`` (the CPU provider only takes the
    nodes CUDA cannot run; a CUDA provider that fails to start is an error, not a CPU fall-back), and
    OpenCV DNN the CUDA backend and target on GPU ``N``. ``cpu`` and plugins leave the spec as it is;
    an analysis module gets ``devices: [device]``, which its constructor is told (see
    :func:`visionserve.modules.loader.device_arguments`).
    """
    if spec.backend is BackendKind.MODULE:
        return spec.model_copy(update={"devices": (device,)})
    if not device.startswith("cuda") or spec.backend is BackendKind.PLUGIN:
        return spec
    index = int(device.partition(":")[2] or 0)
    providers = spec.runtime.providers if spec.runtime.providers[0] != "CPUExecutionProvider" else _GPU_PROVIDERS
    runtime = spec.runtime.model_copy(
        update={"providers": providers, "opencv_backend": "cuda", "opencv_target": "cuda", "device_id": index}
    )
    return spec.model_copy(update={"runtime": runtime})


def spec_for_instance(spec: ModelSpec, index: int) -> ModelSpec:
    """The spec of instance ``index``: on ``spec.devices[index % len(spec.devices)]`` when the spec
    lists devices (one instance per GPU, in turn), else ``spec`` itself."""
    if not spec.devices:
        return spec
    return spec_on_device(spec, spec.devices[index % len(spec.devices)])


def device_names(spec: ModelSpec) -> tuple[str, ...]:
    """Where ``spec``'s instances run, for people: its ``devices`` when it lists them, else
    ``cuda:N`` when its runtime options name CUDA (an ONNX Runtime provider or an OpenCV DNN
    target), else ``cpu``."""
    if spec.devices:
        return spec.devices
    runtime = spec.runtime
    cuda = runtime.opencv_target.startswith("cuda") or any(
        p.startswith(("CUDA", "Tensorrt")) for p in runtime.providers
    )
    return (f"cuda:{runtime.device_id}",) if cuda else ("cpu",)
