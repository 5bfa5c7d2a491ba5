"""The KServe v2 / Open Inference Protocol over HTTP, as Triton serves it (binary tensor extension included).

A detection model looks like this to a v2 client:

- input ``image``: ``BYTES [B]``, one encoded image (JPEG, PNG, ...) per element; or ``UINT8
  [B, H, W, 3]`` decoded pixels, RGB unless the request parameter ``color_order`` is ``"BGR"``;
- outputs, padded to the largest count N in the batch and sorted by score: ``boxes FP32 [B, N, 4]``
  (x1, y1, x2, y2 in source pixels), ``scores FP32 [B, N]``, ``class_ids INT32 [B, N]`` (-1 in
  padding), ``labels BYTES [B, N]`` (empty in padding) and ``num_detections INT32 [B]``; masks,
  keypoints and the outputs of classify models (with Triton's classification extension) are
  described in :mod:`visionserve.api.wire.kserve_outputs`;
- request parameters ``conf``, ``iou``, ``max_det`` and ``classes`` (names or ids, a list or a
  comma-separated string) override the model's thresholds.

A body whose JSON header is followed by binary tensors carries the header's length in the
``Inference-Header-Content-Length`` HTTP header; an answer with binary outputs does the same.
Errors are ``{"error": "..."}``. Pure functions and pydantic schemas only.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from visionserve.api.wire.common import (
    ImageInput,
    RequestOptions,
    as_bgr_image,
    describe_validation_error,
    parse_color_order,
    split_classes,
)
from visionserve.api.wire.kserve_outputs import (
    TASK_OUTPUTS,
    OutputName,
    WantedOutput,
    all_outputs,
    wanted_output,
)
from visionserve.api.wire.kserve_tensors import (
    Datatype,
    tensor_from_binary,
    tensor_from_json,
    tensor_to_binary,
    tensor_to_json,
)
from visionserve.errors import ImageTooLargeError, InvalidParameterError
from visionserve.models.spec import BEST, ColorOrder, Task
from visionserve.serving.results import ModelState, ModelStatus

#: HTTP header that gives the length of the JSON part of a body followed by binary tensors.
HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"
#: The one input of a detection model.
INPUT_NAME = "image"
#: Extensions of the protocol that visionserve implements (reported by ``GET /v2``).
EXTENSIONS = ("binary_tensor_data", "classification", "model_repository", "parameters")

Parameters = dict[str, str | int | float | bool]


class RepositoryState(StrEnum):
    """Model states of the repository extension, as Triton names them."""

    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MetadataTensor(_Wire):
    name: str
    datatype: Datatype
    shape: list[int]


class ServerMetadata(_Wire):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(_Wire):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(_Wire):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters = Field(default_factory=dict)
    data: Any = None


class RequestOutput(_Wire):
    name: str
    parameters: Parameters = Field(default_factory=dict)


class InferenceRequest(_Wire):
    id: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Wire):
    name: str
    datatype: Datatype
    shape: list[int]
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(_Wire):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


class RepositoryIndexRequest(_Wire):
    ready: bool = False


class RepositoryModel(_Wire):
    name: str
    version: str | None = None
    state: RepositoryState
    reason: str = ""


class ErrorResponse(_Wire):
    error: str


@dataclass(frozen=True)
class ParsedInfer:
    """An inference request with its tensors decoded (``BYTES`` as object arrays of bytes)."""

    request: InferenceRequest
    tensors: dict[str, npt.NDArray[Any]]


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """``body`` undone from ``Content-Encoding`` gzip or deflate (zlib), at most ``max_bytes`` long.

    Raises :class:`InvalidParameterError` for an unknown encoding or corrupt data, and
    :class:`ImageTooLargeError` (413, like any too-large body) for one that inflates past ``max_bytes``.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in {"gzip", "deflate"}:
        raise InvalidParameterError(f"unsupported Content-Encoding {encoding!r}: use gzip or deflate")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise InvalidParameterError(f"corrupt {encoding} body: {exc}") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise ImageTooLargeError(f"request body inflates to more than {max_bytes} bytes")
    return data


def parse_header_length(value: str | None) -> int | None:
    """The ``Inference-Header-Content-Length`` header as a number (None when absent)."""
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidParameterError(f"{HEADER_LENGTH_HEADER} must be a byte count, got {value!r}")
    return int(value)


def parse_index_request(body: bytes) -> RepositoryIndexRequest:
    """The body of ``POST /v2/repository/index`` (empty means ``{"ready": false}``)."""
    if not body.strip():
        return RepositoryIndexRequest()
    try:
        return RepositoryIndexRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidParameterError(f"failed to parse the request JSON: {describe_validation_error(exc)}") from None


def _split(body: bytes, header_length: int | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not 0 < header_length <= len(body):
        raise InvalidParameterError(f"{HEADER_LENGTH_HEADER} is {header_length} but the body has {len(body)} bytes")
    return body[:header_length], body[header_length:]


def _binary_size(item: RequestInput) -> int | None:
    size = item.parameters.get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidParameterError(f"input '{item.name}': binary_data_size must be a non-negative integer")
    return size


def parse_infer_request(body: bytes, header_length: int | None = None) -> ParsedInfer:
    """Parse an inference request: the JSON header, then the binary tensors that follow it in the
    order of the inputs that declare ``binary_data_size``.

    Raises :class:`InvalidParameterError` for invalid JSON, a duplicate or data-less input,
    shared-memory inputs, sizes that do not add up to the body, or tensors that do not fit their
    shape and datatype.
    """
    header, binary = _split(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise InvalidParameterError(f"failed to parse the request JSON: {describe_validation_error(exc)}") from None
    tensors: dict[str, npt.NDArray[Any]] = {}
    offset = 0
    for item in request.inputs:
        if item.name in tensors:
            raise InvalidParameterError(f"input '{item.name}' is given more than once")
        if any(key.startswith("shared_memory") for key in item.parameters):
            raise InvalidParameterError(f"input '{item.name}': shared memory is not supported over this server")
        size = _binary_size(item)
        if size is not None:
            if offset + size > len(binary):
                raise InvalidParameterError(f"input '{item.name}': binary data ends before its {size} bytes")
            raw = binary[offset : offset + size]
            tensors[item.name] = tensor_from_binary(item.name, raw, item.datatype, item.shape)
            offset += size
        elif item.data is not None:
            content_type = item.parameters.get("content_type")
            tensors[item.name] = tensor_from_json(
                item.name, item.data, item.datatype, item.shape, str(content_type) if content_type else None
            )
        else:
            raise InvalidParameterError(f"input '{item.name}' has neither data nor binary_data_size")
    if offset != len(binary):
        raise InvalidParameterError(f"{len(binary) - offset} bytes of binary data follow the last input")
    return ParsedInfer(request, tensors)


def image_inputs(parsed: ParsedInfer) -> list[ImageInput]:
    """The images of the ``image`` input: bytes per ``BYTES`` element, or one BGR array per
    ``UINT8 [B, H, W, 3]`` batch item. Raises :class:`InvalidParameterError` otherwise."""
    names = set(parsed.tensors)
    if names != {INPUT_NAME}:
        unexpected = sorted(names - {INPUT_NAME})
        raise InvalidParameterError(
            f"unexpected inference input {unexpected[0]!r}: the model takes one input named '{INPUT_NAME}'"
            if unexpected
            else f"missing inference input '{INPUT_NAME}'"
        )
    (item,) = parsed.request.inputs
    tensor = parsed.tensors[INPUT_NAME]
    if item.datatype is Datatype.BYTES:
        if tensor.ndim != 1 or tensor.size == 0:
            raise InvalidParameterError(f"input 'image': BYTES shape must be [B] with B >= 1, got {item.shape}")
        return [bytes(element) for element in tensor]
    if item.datatype is Datatype.UINT8:
        if tensor.ndim != 4 or tensor.shape[0] == 0:
            raise InvalidParameterError(f"input 'image': UINT8 shape must be [B, H, W, 3], got {item.shape}")
        color = parse_color_order(parsed.request.parameters.get("color_order", ColorOrder.RGB.value))
        return [as_bgr_image(f"input 'image' item {i}", image, color) for i, image in enumerate(tensor)]
    raise InvalidParameterError(f"input 'image': datatype must be BYTES or UINT8, got {item.datatype}")


def _number(parameters: Parameters, name: str) -> float | None:
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(f"parameter '{name}' must be a number, got {value!r}")
    return float(value)


def _conf(parameters: Parameters) -> float | Literal["best"] | None:
    """The ``conf`` parameter: a number, or ``"best"`` (the model's saved per-class thresholds)."""
    return BEST if parameters.get("conf") == BEST else _number(parameters, "conf")


def request_options(request: InferenceRequest) -> RequestOptions:
    """Thresholds from the request parameters ``conf``, ``iou``, ``max_det`` and ``classes``."""
    max_det = _number(request.parameters, "max_det")
    if max_det is not None and not max_det.is_integer():
        raise InvalidParameterError(f"parameter 'max_det' must be an integer, got {max_det}")
    return RequestOptions(
        conf=_conf(request.parameters),
        iou=_number(request.parameters, "iou"),
        max_det=None if max_det is None else int(max_det),
        classes=split_classes(request.parameters.get("classes")),
    )


def requested_outputs(request: InferenceRequest, task: Task, model_name: str) -> list[WantedOutput]:
    """The outputs to return for a ``task`` model, in request order (all, in order, when none is
    named), each as binary data when it or the request's ``binary_data_output`` says so."""
    binary_default = request.parameters.get("binary_data_output") is True
    if request.outputs is None:
        return all_outputs(task, binary_default)
    return [
        wanted_output(output.name, dict(output.parameters), task, model_name, binary_default)
        for output in request.outputs
    ]


def classification_count(wanted: Sequence[WantedOutput]) -> int | None:
    """The most classes that the classification extension asks for (None when it is not used)."""
    return max((w.classification for w in wanted if w.classification is not None), default=None)


def render_infer_response(
    model_name: str,
    model_version: str | None,
    request: InferenceRequest,
    wanted: Sequence[WantedOutput],
    tensors: dict[OutputName, npt.NDArray[Any]],
) -> tuple[bytes, int | None]:
    """The answer body for the ``wanted`` outputs and, when binary outputs follow the JSON, the
    JSON's length (to send as ``Inference-Header-Content-Length``; None for a plain JSON answer)."""
    outputs: list[ResponseOutput] = []
    chunks: list[bytes] = []
    for output in wanted:
        array, datatype = tensors[output.name], output.datatype
        if output.binary:
            raw = tensor_to_binary(array, datatype)
            chunks.append(raw)
            parameters: Parameters = {"binary_data_size": len(raw)}
            outputs.append(
                ResponseOutput(name=output.name, datatype=datatype, shape=list(array.shape), parameters=parameters)
            )
        else:
            data = tensor_to_json(array, datatype)
            outputs.append(ResponseOutput(name=output.name, datatype=datatype, shape=list(array.shape), data=data))
    response = InferenceResponse(model_name=model_name, model_version=model_version, id=request.id, outputs=outputs)
    header = response.model_dump_json(exclude_none=True).encode("utf-8")
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


_STATES = {
    ModelState.LOADED: RepositoryState.READY,
    ModelState.LOADING: RepositoryState.LOADING,
    ModelState.UNLOADING: RepositoryState.UNLOADING,
}


def repository_index(statuses: Sequence[ModelStatus], only_ready: bool) -> list[RepositoryModel]:
    """The repository extension's index of ``statuses`` (only the ``READY`` models with ``only_ready``);
    the reason of a model that is not ready is its error or its state."""
    entries = [
        RepositoryModel(
            name=status.name,
            version=status.spec.version if status.spec else None,
            state=_STATES.get(status.state, RepositoryState.UNAVAILABLE),
            reason=status.error or ("" if status.state is ModelState.LOADED else status.state.value),
        )
        for status in statuses
    ]
    return [entry for entry in entries if not only_ready or entry.state is RepositoryState.READY]


def render_model_metadata(name: str, version: str, platform: str, task: Task = Task.DETECT) -> ModelMetadata:
    """Metadata of a ``task`` model: its one input and the outputs of its task."""
    return ModelMetadata(
        name=name,
        versions=[version],
        platform=platform,
        inputs=[MetadataTensor(name=INPUT_NAME, datatype=Datatype.BYTES, shape=[-1])],
        outputs=[MetadataTensor(name=n, datatype=t, shape=s) for n, (t, s) in TASK_OUTPUTS[task].items()],
    )


def render_server_metadata(version: str) -> ServerMetadata:
    """``GET /v2``: the server's name, version and extensions."""
    return ServerMetadata(name="visionserve", version=version, extensions=list(EXTENSIONS))


def render_error(message: str) -> ErrorResponse:
    """``{"error": message}``."""
    return ErrorResponse(error=message)
