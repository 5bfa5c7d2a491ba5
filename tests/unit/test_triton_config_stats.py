"""Triton's model config and statistics as pure functions, and the counters the service feeds."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from visionserve.api.wire.triton_config import instance_groups, model_config
from visionserve.api.wire.triton_stats import statistics_response
from visionserve.models.spec import ModelSpec, spec_from_mapping
from visionserve.serving.model_stats import (
    ComputeTimes,
    Duration,
    ModelStats,
    StatsRegistry,
    StatsSnapshot,
    ms_to_ns,
    record_request,
)
from visionserve.serving.results import Timings


def spec(**fields: object) -> ModelSpec:
    base: dict[str, object] = {
        "name": "yolo",
        "version": "3",
        "backend": "onnxruntime",
        "files": {"model": "net.onnx"},
        "input": {"width": 640, "height": 640},
        "decoder": {"layout": "yolov8"},
        "labels": ["person", "car"],
        "batching": {"max_batch_size": 16, "max_queue_delay_ms": 2.5, "queue_size": 99},
    }
    return spec_from_mapping({**base, **fields}, "test", Path("/models/yolo"))


def test_config_of_a_detector_is_in_tritons_shape() -> None:
    config = model_config(spec(), instances=2)
    assert config["name"] == "yolo" and config["platform"] == config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 16 and config["default_model_filename"] == "net.onnx"
    assert config["input"] == [
        {
            "name": "image",
            "data_type": "TYPE_STRING",
            "dims": [1],
            "reshape": {"shape": []},
            "format": "FORMAT_NONE",
            "is_shape_tensor": False,
            "allow_ragged_batch": False,
            "optional": False,
        }
    ]
    outputs = {o["name"]: (o["data_type"], o["dims"], o.get("reshape")) for o in config["output"]}
    assert outputs == {
        "boxes": ("TYPE_FP32", [-1, 4], None),
        "scores": ("TYPE_FP32", [-1], None),
        "class_ids": ("TYPE_INT32", [-1], None),
        "labels": ("TYPE_STRING", [-1], None),
        "num_detections": ("TYPE_INT32", [1], {"shape": []}),
    }
    batching = config["dynamic_batching"]
    assert batching["max_queue_delay_microseconds"] == 2500
    assert batching["default_queue_policy"]["max_queue_size"] == 99
    assert config["instance_group"] == [
        {
            "name": "yolo",
            "kind": "KIND_CPU",
            "count": 2,
            "gpus": [],
            "secondary_devices": [],
            "profile": [],
            "passive": False,
            "host_policy": "",
        }
    ]
    assert config["parameters"]["task"] == {"string_value": "detect"}


@pytest.mark.parametrize(
    ("fields", "instances", "groups"),
    [
        ({"devices": ["cuda:0", "cuda:1"]}, 4, [("KIND_GPU", 2, [0]), ("KIND_GPU", 2, [1])]),
        ({"devices": ["cpu", "cuda:1"]}, 3, [("KIND_CPU", 2, []), ("KIND_GPU", 1, [1])]),
        ({"runtime": {"providers": ["CUDAExecutionProvider"], "device_id": 2}}, 1, [("KIND_GPU", 1, [2])]),
        ({"backend": "opencv_dnn", "runtime": {"opencv_target": "cuda_fp16"}}, 2, [("KIND_GPU", 2, [0])]),
        ({}, 1, [("KIND_CPU", 1, [])]),
    ],
)
def test_instance_groups_follow_the_devices(
    fields: dict[str, object], instances: int, groups: list[tuple[str, int, list[int]]]
) -> None:
    found = instance_groups(spec(**fields), instances)
    assert [(g["kind"], g["count"], g["gpus"]) for g in found] == groups
    assert len({g["name"] for g in found}) == len(found)


def test_outputs_follow_the_task() -> None:
    classify = model_config(spec(task="classify", decoder={"layout": "classify"}), 1)
    assert [o["name"] for o in classify["output"]] == ["scores", "class_ids", "labels"]
    assert classify["parameters"]["top_k"] == {"string_value": "5"}
    pose = model_config(spec(task="pose", decoder={"layout": "yolov8_pose"}), 1)
    keypoints = next(o for o in pose["output"] if o["name"] == "keypoints")
    assert keypoints["dims"] == [-1, -1, 3]


def test_plugin_model_config_has_no_file() -> None:
    plugin = spec_from_mapping({"name": "p", "backend": "plugin", "plugin": "pkg.mod:Cls"}, "test", Path("/m"))
    config = model_config(plugin, 1)
    assert config["default_model_filename"] == "" and config["max_batch_size"] == 8


def test_stats_count_requests_and_executions() -> None:
    stats = ModelStats(wall=lambda: 1_700_000_000.5)
    stats.record_execution(2, ComputeTimes(10, 20, 30))
    stats.record_execution(2, ComputeTimes(1, 2, 3))
    stats.record_execution(1, ComputeTimes(5, 5, 5))
    stats.record_success(1000, 100, ComputeTimes(10, 20, 30))
    stats.record_failure(50)
    snap = stats.snapshot()
    assert snap.inference_count == 5 and snap.execution_count == 3
    assert snap.last_inference_ms == 1_700_000_000_500
    assert snap.success == Duration(1, 1000) and snap.fail == Duration(1, 50) and snap.queue == Duration(1, 100)
    assert (snap.compute_input, snap.compute_infer, snap.compute_output) == (Duration(1, 10), Duration(1, 20),
                                                                              Duration(1, 30))  # fmt: skip
    assert [b.batch_size for b in snap.batches] == [1, 2]
    assert snap.batches[1].compute_infer == Duration(2, 22) and snap.batches[0].compute_output == Duration(1, 5)


def test_a_request_takes_the_longest_times_of_its_images() -> None:
    stats = ModelStats()
    record_request(stats, [Timings(1.0, 0.5, 2.0, 3.0, 0.25, 10.0), Timings(1.5, 0.5, 2.0, 3.0, 0.25, 11.0)])
    snap = stats.snapshot()
    assert snap.success == Duration(1, 11_000_000) and snap.queue == Duration(1, 1_500_000)
    assert snap.compute_infer == Duration(1, 3_000_000) and snap.compute_output == Duration(1, 250_000)
    assert ms_to_ns(-1.0) == 0


def test_counters_are_exact_under_threads() -> None:
    registry = StatsRegistry()

    def hammer() -> None:
        for _ in range(2000):
            registry.model("m").record_execution(1, ComputeTimes(1, 1, 1))
            registry.model("m").record_success(1, 1, ComputeTimes(1, 1, 1))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = registry.snapshot("m")
    assert snap.execution_count == 8000 and snap.success.count == 8000 and snap.batches[0].compute_infer.ns == 8000
    assert registry.snapshot("never") == StatsSnapshot()


def test_statistics_document_is_in_tritons_shape() -> None:
    stats = ModelStats(wall=lambda: 2.0)
    stats.record_execution(3, ComputeTimes(4, 5, 6))
    stats.record_success(7, 8, ComputeTimes(4, 5, 6))
    document = statistics_response([("yolo", "3", stats.snapshot())])
    (entry,) = document["model_stats"]
    assert entry["name"] == "yolo" and entry["version"] == "3" and entry["last_inference"] == 2000
    assert entry["inference_count"] == 3 and entry["execution_count"] == 1
    assert entry["inference_stats"]["success"] == {"count": 1, "ns": 7}
    assert entry["inference_stats"]["cache_miss"] == {"count": 0, "ns": 0}
    assert entry["batch_stats"] == [
        {
            "batch_size": 3,
            "compute_input": {"count": 1, "ns": 4},
            "compute_infer": {"count": 1, "ns": 5},
            "compute_output": {"count": 1, "ns": 6},
        }
    ]
