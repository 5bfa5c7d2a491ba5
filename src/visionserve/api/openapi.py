"""The OpenAPI document: request bodies and error answers that FastAPI cannot see.

Routes read their bodies themselves (raw images, multipart forms with binary fields, protocol JSON
checked by the wire codecs), so FastAPI infers no ``requestBody``; and the errors that the one table
of :mod:`visionserve.api.errors` produces are not declared anywhere. :func:`install_openapi` adds both
to the generated document, from :data:`REQUEST_BODIES` (one entry per ``(method, path)`` of a route
that takes a body: a route missing there is caught by a test that walks the document) and from
:data:`ERROR_SCHEMAS` (each protocol's error shape, by path prefix). FastAPI still parses nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from visionserve.api.routes.evaluate import EvaluateParams
from visionserve.api.routes.jobs import JobParams
from visionserve.api.wire.kserve_v2 import InferenceRequest, RepositoryIndexRequest
from visionserve.api.wire.native import PredictParams
from visionserve.api.wire.roboflow import (
    AddModelRequest,
    ClassificationRequest,
    ClearModelRequest,
    InstanceSegmentationRequest,
    KeypointsDetectionRequest,
    ObjectDetectionRequest,
)
from visionserve.streams.spec import StreamSpec

Json = dict[str, Any]

_BINARY: Json = {"type": "string", "format": "binary"}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "application/octet-stream")

#: Statuses every operation may answer (401 only with API keys), and those of operations with a body.
_ALWAYS = {"401": "Missing or wrong API key", "404": "Unknown model, job or route", "405": "Wrong method"}
_ALWAYS |= {"422": "Bad parameter", "500": "Internal error (its id is in the log)"}
_ALWAYS |= {"503": "Model not loaded, storage unavailable, or server shutting down"}
_WITH_BODY = {"400": "Undecodable image or unreadable body", "413": "Body or pixel limit exceeded"}
_WITH_BODY |= {"415": "Content type that is not an image", "429": "The model's queue is full (see Retry-After)"}

#: Error bodies of protocols that answer a bad parameter with their clients' 400, not 422.
_PROTOCOL_400 = frozenset({"DeepStackErrorBody", "KServeErrorBody", "TFServingErrorBody"})
#: Statuses particular to one operation.
_EXTRA: dict[tuple[str, str], dict[str, str]] = {("delete", "/v1/jobs/{job_id}"): {"409": "The job has already ended"}}
#: KServe's boolean answers: 200 or 400 with no body (404 for an unknown model still has one).
_BODILESS = frozenset(
    {"/v2/health/live", "/v2/health/ready", "/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}/ready"}
)

_ERROR: Json = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["model_not_ready"]},
                "message": {"type": "string"},
                "id": {"type": "string", "description": "5xx only: the id of the log line"},
                "traceback": {"type": "string", "description": "500 in debug mode only"},
            },
        }
    },
}

#: Error bodies by path prefix (first match): protocol routes answer in their clients' shape.
ERROR_SCHEMAS: list[tuple[str, str, Json]] = [
    ("/v1/vision/", "DeepStackErrorBody", {
        "type": "object", "required": ["success", "error"],
        "properties": {"success": {"type": "boolean", "const": False}, "error": {"type": "string"},
                       "code": {"type": "integer"}},
    }),
    ("/v2", "KServeErrorBody", {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}),
    ("/v1/models/{name}/versions/", "TFServingErrorBody",
     {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}),
    ("/v1/models/{name}:", "TFServingErrorBody",
     {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}),
    ("/v1/models/{name}/metadata", "TFServingErrorBody",
     {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}),
    ("/infer/", "RoboflowErrorBody", {"type": "object", "required": ["message"],
                                      "properties": {"message": {"type": "string"}}}),
    ("/model/", "RoboflowErrorBody", {"type": "object", "required": ["message"],
                                      "properties": {"message": {"type": "string"}}}),
    ("/upload", "UploadErrorBody", {
        "type": "object", "required": ["status", "error"],
        "properties": {"status": {"type": "string", "const": "error"}, "error": {"type": "string"},
                       "traceback": {"type": "string"}},
    }),
    ("/", "Error", _ERROR),
]  # fmt: skip


def _fields(model: type[BaseModel]) -> Json:
    """The properties of ``model`` as form fields (all strings on the wire)."""
    return {
        name: {"type": "string", "description": field.description or name} for name, field in model.model_fields.items()
    }


def _multipart(files: dict[str, bool], fields: Json, required: list[str]) -> Json:
    """A multipart form: ``files`` maps a binary field to whether it may repeat; ``fields`` are text."""
    properties: Json = {
        name: {"type": "array", "items": _BINARY} if repeated else _BINARY for name, repeated in files.items()
    }
    return {"multipart/form-data": {"schema": {"type": "object", "properties": {**properties, **fields},
                                               "required": required}}}  # fmt: skip


def _raw_images() -> Json:
    return {media: {"schema": _BINARY} for media in _IMAGE_TYPES}


def _json(model: type[BaseModel]) -> Json:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def _body(content: Json, required: bool = True, description: str = "") -> Json:
    return {"required": required, "description": description, "content": content}


def _no_body() -> Json:
    return _body({"application/json": {"schema": {"type": "object", "maxProperties": 0}}}, False, "No body.")


_DETECT = _body(
    _multipart({"image": True}, _fields(PredictParams), ["image"]) | _raw_images(),
    description="Repeated multipart 'image' fields with optional option fields, or one raw image body.",
)
_DEEPSTACK = _body(
    _multipart({"image": False}, {"min_confidence": {"type": "string"}, "api_key": {"type": "string"}}, ["image"])
)
_KSERVE_INFER = _body(
    _json(InferenceRequest) | {"application/octet-stream": {"schema": _BINARY}},
    description="KServe v2 JSON, or the binary extension (Inference-Header-Content-Length).",
)
_TF_PREDICT = _body({"application/json": {"schema": {"type": "object", "properties": {
    "signature_name": {"type": "string"}, "instances": {"type": "array", "items": {}}, "inputs": {}}}}})  # fmt: skip
_OPTIONAL_REPOSITORY = _body(_json(RepositoryIndexRequest), False)

#: The request body of every route that takes one (or may: required False).
REQUEST_BODIES: dict[tuple[str, str], Json] = {
    ("post", "/v1/detect"): _DETECT,
    ("post", "/v1/models/{name}/detect"): _DETECT,
    ("post", "/v1/predict"): _DETECT,
    ("post", "/v1/models/{name}/predict"): _DETECT,
    ("post", "/v1/models/{name}/load"): _no_body(),
    ("post", "/v1/models/{name}/unload"): _no_body(),
    ("post", "/v1/jobs"): _body(
        _multipart({"image": True}, {"url": {"type": "array", "items": {"type": "string"}}} | _fields(JobParams), [])
        | _json(JobParams),
        description="Multipart 'image' (and 'url') fields with options, or JSON {\"urls\": [...], options}.",
    ),
    ("post", "/v1/models/{name}/evaluate"): _body(
        _multipart({"archive": False}, _fields(EvaluateParams), ["archive"]),
        description="A zip archive of images and their labels (COCO, YOLO, VOC, class folders or CSV).",
    ),
    ("post", "/v1/vision/detection"): _DEEPSTACK,
    ("post", "/v1/vision/custom/{model}"): _DEEPSTACK,
    ("post", "/v1/vision/scene"): _body(_multipart({"image": False}, {"api_key": {"type": "string"}}, ["image"])),
    ("post", "/v1/vision/custom/list"): _body(_multipart({}, {"api_key": {"type": "string"}}, []), False),
    ("post", "/v2/models/{name}/infer"): _KSERVE_INFER,
    ("post", "/v2/models/{name}/versions/{version}/infer"): _KSERVE_INFER,
    ("post", "/v2/repository/index"): _OPTIONAL_REPOSITORY,
    ("post", "/v2/repository/models/{name}/load"): _OPTIONAL_REPOSITORY,
    ("post", "/v2/repository/models/{name}/unload"): _OPTIONAL_REPOSITORY,
    ("post", "/v1/models/{name}:predict"): _TF_PREDICT,
    ("post", "/v1/models/{name}/versions/{version}:predict"): _TF_PREDICT,
    ("post", "/infer/object_detection"): _body(_json(ObjectDetectionRequest)),
    ("post", "/infer/instance_segmentation"): _body(_json(InstanceSegmentationRequest)),
    ("post", "/infer/keypoints_detection"): _body(_json(KeypointsDetectionRequest)),
    ("post", "/infer/classification"): _body(_json(ClassificationRequest)),
    ("post", "/model/add"): _body(_json(AddModelRequest)),
    ("post", "/model/remove"): _body(_json(ClearModelRequest)),
    ("post", "/model/clear"): _body(_json(ClearModelRequest), False),
    ("post", "/upload"): _body(_multipart({"file": False}, {}, ["file"])),
    ("post", "/file_upload"): _body(
        _multipart({"file": True}, _fields(PredictParams) | {"api_key": {"type": "string"}}, ["file"]) | _raw_images(),
        description="The photo as multipart 'file' (the Android app's field) with optional option fields, or a raw "
        "image body; the answer is that of /v1/predict.",
    ),
    ("post", "/v1/streams"): _body(_json(StreamSpec)),
    ("post", "/v1/streams/{stream_id}/pause"): _no_body(),
    ("post", "/v1/streams/{stream_id}/resume"): _no_body(),
    ("post", "/v1/streams/{stream_id}/token"): _no_body(),
    ("post", "/v1/detect/ws/token"): _no_body(),
}

_BODY_MODELS: tuple[type[BaseModel], ...] = (
    InferenceRequest, RepositoryIndexRequest, ObjectDetectionRequest, InstanceSegmentationRequest,
    KeypointsDetectionRequest, ClassificationRequest, AddModelRequest, ClearModelRequest, JobParams, StreamSpec,
)  # fmt: skip


def _error_ref(path: str) -> str:
    return next(name for prefix, name, _ in ERROR_SCHEMAS if path.startswith(prefix))


def _add_schemas(document: Json) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in _BODY_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for _, name, schema in ERROR_SCHEMAS:
        schemas[name] = schema


def _statuses(method: str, path: str, has_body: bool) -> dict[str, str]:
    statuses = _ALWAYS | (_WITH_BODY if has_body else {}) | _EXTRA.get((method, path), {})
    if _error_ref(path) in _PROTOCOL_400:
        statuses = {"400": "Bad request: an undecodable image or a bad parameter"} | statuses
    return statuses


def complete(document: Json) -> Json:
    """``document`` (FastAPI's) with request bodies and error answers on every operation."""
    _add_schemas(document)
    for path, operations in document.get("paths", {}).items():
        error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{_error_ref(path)}"}}}
        for method, operation in operations.items():
            body = REQUEST_BODIES.get((method, path))
            if body is not None:
                operation["requestBody"] = body
            responses = operation.setdefault("responses", {})
            for status, description in _statuses(method, path, body is not None).items():
                responses[status] = {"description": description, "content": error}
            if path in _BODILESS:
                responses["200"] = {"description": "Yes (no body)"}
                responses["400"] = {"description": "No (no body)"}
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) return the completed document."""

    def openapi() -> Json:
        if app.openapi_schema is None:
            generated = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = complete(generated)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it
