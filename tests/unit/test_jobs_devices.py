"""Device choice of worker processes."""

from __future__ import annotations

import pytest

from visionserve.errors import ConfigError
from visionserve.jobs.devices import resolve_device, spec_on_device
from visionserve.models.default import default_spec
from visionserve.models.spec import ModelSpec


@pytest.mark.parametrize(
    ("device", "index", "gpus", "expected"),
    [
        ("auto", 0, 0, "cpu"),
        ("auto", 3, 0, "cpu"),
        ("auto", 0, 2, "cuda:0"),
        ("auto", 3, 2, "cuda:1"),
        ("auto", 5, 4, "cuda:1"),
        ("cuda", 7, 2, "cuda:0"),
        ("cuda:3", 0, 0, "cuda:3"),
        ("cpu", 1, 8, "cpu"),
    ],
)
def test_resolve_device(device: str, index: int, gpus: int, expected: str) -> None:
    assert resolve_device(device, index, gpus) == expected


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_unknown_devices_are_config_errors(device: str) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(device, 0, 1)


def test_cuda_rewrites_the_runtime_options_and_cpu_leaves_the_spec_alone() -> None:
    spec = default_spec()
    assert spec_on_device(spec, "cpu") is spec
    on_gpu = spec_on_device(spec, "cuda:0")
    assert on_gpu.runtime.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert (on_gpu.runtime.opencv_backend, on_gpu.runtime.opencv_target) == ("cuda", "cuda")
    assert spec.runtime.opencv_target == "cpu"
    plugin = ModelSpec(name="p", backend="plugin", plugin="mod:Cls")
    assert spec_on_device(plugin, "cuda:0") is plugin
