"""Instances on devices: one GPU per instance in turn, and clear errors where there is no GPU."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from visionserve.backends.onnxruntime import provider_options
from visionserve.errors import ModelLoadError, ModelSpecError
from visionserve.models.default import default_spec
from visionserve.models.devices import spec_for_instance, spec_on_device
from visionserve.models.loading import load_model
from visionserve.models.spec import ModelSpec, load_spec
from visionserve.pipeline import Predictor
from visionserve.serving.instances import ModelInstance


def with_devices(*devices: str) -> ModelSpec:
    return default_spec().model_copy(update={"devices": devices})


def test_instances_take_the_devices_in_turn() -> None:
    spec = with_devices("cuda:0", "cuda:1")
    runtimes = [spec_for_instance(spec, i).runtime for i in range(3)]
    assert [r.device_id for r in runtimes] == [0, 1, 0]
    assert {(r.opencv_backend, r.opencv_target) for r in runtimes} == {("cuda", "cuda")}
    assert runtimes[0].providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    plain = default_spec()
    assert spec_for_instance(plain, 5) is plain
    mixed = with_devices("cpu", "cuda:2")
    assert spec_for_instance(mixed, 0).runtime.opencv_target == "cpu"
    assert spec_for_instance(mixed, 1).runtime.device_id == 2


def test_a_chosen_provider_list_is_kept_on_the_gpu() -> None:
    spec = default_spec()
    trt = spec.model_copy(
        update={"runtime": spec.runtime.model_copy(update={"providers": ("TensorrtExecutionProvider",)})}
    )
    assert spec_on_device(trt, "cuda:3").runtime.providers == ("TensorrtExecutionProvider",)


def test_gpu_providers_get_the_device_id() -> None:
    assert provider_options(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], 1) == [
        ("TensorrtExecutionProvider", {"device_id": "1"}),
        ("CUDAExecutionProvider", {"device_id": "1"}),
        ("CPUExecutionProvider", {}),
    ]


def test_cuda_on_a_build_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match=r"CUDA device 0.*sees 0 CUDA device"):
        load_model(spec_for_instance(with_devices("cuda:0"), 0))


def test_devices_are_validated(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("name: m\nbackend: plugin\nplugin: mod:Cls\ndevices: [gpu0]\n")
    with pytest.raises(ModelSpecError, match=r"field 'devices\.0'"):
        load_spec(tmp_path / "model.yaml")


def test_each_server_instance_loads_on_its_device() -> None:
    loaded: list[ModelSpec] = []

    def load(spec: ModelSpec) -> Predictor:
        loaded.append(spec)
        return load_model(default_spec())

    async def open_three() -> None:
        spec = with_devices("cuda:0", "cuda:1")
        instances = [await ModelInstance.open(spec, i, load) for i in range(3)]
        await asyncio.gather(*(instance.close() for instance in instances))

    asyncio.run(open_three())
    assert [s.runtime.device_id for s in loaded] == [0, 1, 0]
