"""KServe v2 over gRPC: protobuf messages to and from the values of the HTTP codec (pure functions).

A ``ModelInferRequest`` becomes the same :class:`~visionserve.api.wire.kserve_v2.ParsedInfer` that an
HTTP body becomes, so inputs, outputs and parameters mean what they mean over HTTP (see
:mod:`visionserve.api.wire.kserve_v2`): input ``image`` as ``BYTES [B]`` encoded images or
``UINT8 [B, H, W, 3]`` pixels, request parameters ``conf``, ``iou``, ``max_det``, ``classes``,
``color_order``, Triton's ``classification`` parameter on the ``scores`` output.

Tensor data comes either in ``raw_input_contents`` (one little-endian buffer per input, ``BYTES``
elements length-prefixed, as the binary HTTP extension lays them out; what ``tritonclient.grpc``
sends) or in each input's typed ``contents``. Outputs always go back in ``raw_output_contents``, as
Triton answers. Every malformed message raises :class:`InvalidParameterError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from visionserve.api.kserve_grpc.protos import grpc_service_pb2 as pb
from visionserve.api.kserve_infer import InferOutcome
from visionserve.api.wire import kserve_v2 as v2
from visionserve.api.wire.kserve_tensors import (
    NUMPY_DTYPES,
    Datatype,
    element_count,
    tensor_from_binary,
    tensor_to_binary,
)
from visionserve.errors import InvalidParameterError


class _Parameter(Protocol):
    def WhichOneof(self, oneof_group: str, /) -> str | None: ...


#: The field of ``InferTensorContents`` that holds each datatype (FP16 has none: raw contents only).
_CONTENTS_FIELD: dict[Datatype, str] = {
    Datatype.BOOL: "bool_contents",
    Datatype.UINT8: "uint_contents",
    Datatype.UINT16: "uint_contents",
    Datatype.UINT32: "uint_contents",
    Datatype.UINT64: "uint64_contents",
    Datatype.INT8: "int_contents",
    Datatype.INT16: "int_contents",
    Datatype.INT32: "int_contents",
    Datatype.INT64: "int64_contents",
    Datatype.FP32: "fp32_contents",
    Datatype.FP64: "fp64_contents",
    Datatype.BYTES: "bytes_contents",
}


#: The widest dtype of each kind: typed contents are read into it, then range-checked and narrowed.
_WIDE: dict[str, type[np.generic]] = {"f": np.float64, "i": np.int64, "u": np.uint64}


def parameters(entries: Mapping[str, _Parameter], where: str) -> v2.Parameters:
    """``InferParameter`` map entries as plain values (bool, int, str or float); an entry with no value raises."""
    values: v2.Parameters = {}
    for key, entry in entries.items():
        choice = entry.WhichOneof("parameter_choice")
        if choice is None:
            raise InvalidParameterError(f"{where} parameter '{key}' has no value")
        values[key] = getattr(entry, choice)
    return values


def _datatype(name: str, value: str) -> Datatype:
    try:
        return Datatype(value)
    except ValueError:
        raise InvalidParameterError(f"input '{name}': unknown datatype {value!r}") from None


def _from_contents(name: str, datatype: Datatype, shape: Sequence[int], contents: pb.InferTensorContents) -> Any:
    """The tensor that typed ``contents`` hold, checked against ``shape`` and the datatype's range."""
    count = element_count(name, shape)
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidParameterError(f"input '{name}': {datatype} data must be sent in raw_input_contents")
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidParameterError(f"input '{name}': shape {list(shape)} needs {count} elements, got {len(values)}")
    if datatype is Datatype.BYTES:
        array = np.empty(count, dtype=np.object_)
        array[:] = [bytes(value) for value in values]
        return array.reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    wide = np.fromiter(values, dtype=_WIDE.get(dtype.kind, dtype), count=count)
    if dtype.kind in "iu" and count and (wide.min() < np.iinfo(dtype).min or wide.max() > np.iinfo(dtype).max):
        raise InvalidParameterError(f"input '{name}': values do not fit {datatype}")
    return wide.astype(dtype).reshape(shape)


def _input(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> tuple[v2.RequestInput, npt.NDArray[Any]]:
    datatype = _datatype(item.name, item.datatype)
    shape = list(item.shape)
    given = parameters(item.parameters, f"input '{item.name}'")
    if any(key.startswith("shared_memory") for key in given):
        raise InvalidParameterError(f"input '{item.name}': shared memory is not supported over this server")
    if raw is not None:
        tensor = tensor_from_binary(item.name, raw, datatype, shape)
    else:
        tensor = _from_contents(item.name, datatype, shape, item.contents)
    return v2.RequestInput(name=item.name, shape=shape, datatype=datatype, parameters=given), tensor


def parse_infer(request: pb.ModelInferRequest) -> v2.ParsedInfer:
    """The inference request that ``request`` carries, its tensors decoded.

    ``raw_input_contents``, when given, must hold one buffer per input (the protocol's rule: all inputs
    raw, or none). Raises :class:`InvalidParameterError` for no input, a duplicate input, an unknown
    datatype, shared-memory inputs or data that does not fit its shape and datatype."""
    if not request.inputs:
        raise InvalidParameterError("the request has no inputs")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidParameterError(
            f"raw_input_contents holds {len(raw)} buffers for {len(request.inputs)} inputs: give one per input"
        )
    inputs: list[v2.RequestInput] = []
    tensors: dict[str, npt.NDArray[Any]] = {}
    for index, item in enumerate(request.inputs):
        if item.name in tensors:
            raise InvalidParameterError(f"input '{item.name}' is given more than once")
        described, tensors[item.name] = _input(item, raw[index] if raw else None)
        inputs.append(described)
    outputs = [
        v2.RequestOutput(name=output.name, parameters=parameters(output.parameters, f"output '{output.name}'"))
        for output in request.outputs
    ]
    parsed = v2.InferenceRequest(
        id=request.id or None,
        parameters=parameters(request.parameters, "request"),
        inputs=inputs,
        outputs=outputs or None,
    )
    return v2.ParsedInfer(parsed, tensors)


def render_infer(outcome: InferOutcome, request_id: str) -> pb.ModelInferResponse:
    """The answer to a request with ``request_id``: every wanted output, its data in ``raw_output_contents``."""
    response = pb.ModelInferResponse(model_name=outcome.model, model_version=outcome.version, id=request_id)
    for output in outcome.wanted:
        array, datatype = outcome.tensors[output.name], output.datatype
        response.outputs.add(name=output.name, datatype=datatype.value, shape=list(array.shape))
        response.raw_output_contents.append(tensor_to_binary(array, datatype))
    return response


def render_model_metadata(metadata: v2.ModelMetadata) -> pb.ModelMetadataResponse:
    """The HTTP codec's model metadata as the gRPC message."""

    def tensors(items: Sequence[v2.MetadataTensor]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype.value, shape=t.shape)
            for t in items
        ]

    return pb.ModelMetadataResponse(
        name=metadata.name,
        versions=metadata.versions,
        platform=metadata.platform,
        inputs=tensors(metadata.inputs),
        outputs=tensors(metadata.outputs),
    )


def render_server_metadata(metadata: v2.ServerMetadata) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=metadata.name, version=metadata.version, extensions=metadata.extensions)


def render_repository_index(entries: Sequence[v2.RepositoryModel]) -> pb.RepositoryIndexResponse:
    return pb.RepositoryIndexResponse(
        models=[
            pb.RepositoryIndexResponse.ModelIndex(
                name=entry.name, version=entry.version or "", state=entry.state.value, reason=entry.reason
            )
            for entry in entries
        ]
    )
