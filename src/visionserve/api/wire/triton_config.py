"""A model's configuration in Triton's shape (``GET /v2/models/{name}/config``, gRPC ``ModelConfig``).

The dict uses the field names of Triton's ``model_config.proto`` (snake case, enums by name, integers
as numbers), as Triton's HTTP endpoint writes them, so that ``tritonclient``'s ``get_model_config()``
reads it as from Triton and ``google.protobuf.json_format.ParseDict`` turns it into a
``inference.ModelConfig`` message for gRPC. Pure functions of the spec.

How a visionserve model maps onto it:

- ``max_batch_size`` is the batcher's largest batch; dims of inputs and outputs leave out the batch
  dimension, as Triton's do for batching models. The one input ``image`` is ``TYPE_STRING`` (BYTES)
  with ``dims [1]`` reshaped to ``[]``: one encoded image per batch element, which Triton's metadata
  shows as ``[-1]``, as ours does. Outputs are those of the model's task (see
  :mod:`visionserve.api.wire.kserve_outputs`); a per-image scalar (``num_detections``) is ``dims [1]``
  reshaped to ``[]`` too.
- ``dynamic_batching``: ``max_queue_delay_microseconds`` from the batching section's
  ``max_queue_delay_ms``; ``default_queue_policy.max_queue_size`` is its ``queue_size`` (requests
  beyond it are refused: ``REJECT``).
- ``instance_group``: one group per device, in order of first use: ``KIND_CPU``, or ``KIND_GPU``
  with ``gpus [N]`` for ``cuda:N`` (from ``devices``, or from a CUDA provider or OpenCV target).
- ``platform`` and ``backend`` are the visionserve backend (``onnxruntime``, ``opencv_dnn``,
  ``litert``, ``plugin``), as the model metadata's ``platform`` is.
- ``parameters`` carry the task and the default thresholds as strings.
"""

from __future__ import annotations

from typing import Any

from visionserve.api.wire.kserve_outputs import TASK_OUTPUTS
from visionserve.api.wire.kserve_tensors import Datatype
from visionserve.models.spec import ModelSpec, Task

#: The one input of every model (as :data:`visionserve.api.wire.kserve_v2.INPUT_NAME`).
INPUT_NAME = "image"
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def data_type(datatype: Datatype) -> str:
    """Triton's config name of a tensor datatype (``BYTES`` is ``TYPE_STRING``)."""
    return "TYPE_STRING" if datatype is Datatype.BYTES else f"TYPE_{datatype.value}"


def _tensor(name: str, datatype: Datatype, shape: list[int]) -> dict[str, Any]:
    """A tensor of metadata ``shape`` (batch dimension first) as a config input or output."""
    dims = shape[1:]
    tensor: dict[str, Any] = {"name": name, "data_type": data_type(datatype), "dims": dims or [1]}
    if not dims:
        tensor["reshape"] = {"shape": []}
    return tensor


def config_inputs() -> list[dict[str, Any]]:
    """The ``input`` list: the one BYTES ``image`` input."""
    image = _tensor(INPUT_NAME, Datatype.BYTES, [-1])
    return [
        {**image, "format": "FORMAT_NONE", "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False}
    ]


def config_outputs(task: Task) -> list[dict[str, Any]]:
    """The ``output`` list of a ``task`` model, in the order inference returns them."""
    return [
        {**_tensor(name.value, datatype, shape), "label_filename": "", "is_shape_tensor": False}
        for name, (datatype, shape) in TASK_OUTPUTS[task].items()
    ]


def instance_devices(spec: ModelSpec, instances: int) -> list[str]:
    """The device of each of ``instances`` instances: ``cpu`` or ``cuda:N``."""
    if spec.devices:
        return [spec.devices[i % len(spec.devices)] for i in range(instances)]
    runtime = spec.runtime
    on_gpu = runtime.providers[0] in _GPU_PROVIDERS or runtime.opencv_target.startswith("cuda")
    return [f"cuda:{runtime.device_id}" if on_gpu else "cpu"] * instances


def instance_groups(spec: ModelSpec, instances: int) -> list[dict[str, Any]]:
    """The ``instance_group`` list: one group per device, with its instance count."""
    counts: dict[str, int] = {}
    for device in instance_devices(spec, instances):
        counts[device] = counts.get(device, 0) + 1
    groups = []
    for index, (device, count) in enumerate(counts.items()):
        gpu = device.startswith("cuda")
        groups.append(
            {
                "name": spec.name if len(counts) == 1 else f"{spec.name}_{index}",
                "kind": "KIND_GPU" if gpu else "KIND_CPU",
                "count": count,
                "gpus": [int(device.partition(":")[2] or 0)] if gpu else [],
                "secondary_devices": [],
                "profile": [],
                "passive": False,
                "host_policy": "",
            }
        )
    return groups


def dynamic_batching(spec: ModelSpec) -> dict[str, Any]:
    """The ``dynamic_batching`` section: the batcher's wait and queue bound."""
    batching = spec.batching
    return {
        "preferred_batch_size": [],
        "max_queue_delay_microseconds": round(batching.max_queue_delay_ms * 1000),
        "preserve_ordering": False,
        "priority_levels": 0,
        "default_priority_level": 0,
        "default_queue_policy": {
            "timeout_action": "REJECT",
            "default_timeout_microseconds": 0,
            "allow_timeout_override": False,
            "max_queue_size": batching.queue_size,
        },
    }


def _parameters(spec: ModelSpec) -> dict[str, dict[str, str]]:
    values = {"task": spec.task.value, "conf": spec.thresholds.conf, "iou": spec.thresholds.iou}
    values |= {"top_k": spec.thresholds.top_k} if spec.task is Task.CLASSIFY else {"max_det": spec.thresholds.max_det}
    return {key: {"string_value": str(value)} for key, value in values.items()}


def model_config(spec: ModelSpec, instances: int) -> dict[str, Any]:
    """The Triton model configuration of ``spec`` served with ``instances`` instances."""
    return {
        "name": spec.name,
        "platform": spec.backend.value,
        "backend": spec.backend.value,
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": spec.batching.max_batch_size,
        "input": config_inputs(),
        "output": config_outputs(spec.task),
        "batch_input": [],
        "batch_output": [],
        "dynamic_batching": dynamic_batching(spec),
        "instance_group": instance_groups(spec, instances),
        "default_model_filename": spec.files.model.name if spec.files else "",
        "cc_model_filenames": {},
        "metric_tags": {},
        "parameters": _parameters(spec),
        "model_warmup": [],
    }
