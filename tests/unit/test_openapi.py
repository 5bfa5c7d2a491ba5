"""The OpenAPI document: every operation with a body declares it, every operation documents its error
answers, and the document validates against the OpenAPI specification."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from visionserve.api.app import create_app
from visionserve.models.repository import ModelRepository
from visionserve.settings import Settings

ERRORS_EVERYWHERE = {"401", "404", "405", "422", "500", "503"}
ERRORS_WITH_BODY = {"400", "413", "415", "429"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(data_dir=data), ModelRepository.scan(None))
    transport = httpx.ASGITransport(app=app)

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/openapi.json")  # what /docs and client generators read
            assert answer.status_code == 200
            body: dict[str, Any] = answer.json()
            return body

    return asyncio.run(fetch())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert len(operations(document)) >= 44


def test_every_post_and_put_declares_its_request_body(document: dict[str, Any]) -> None:
    missing = [
        f"{m.upper()} {p}" for m, p, op in operations(document) if m in {"post", "put"} and "requestBody" not in op
    ]
    assert not missing


def test_every_operation_documents_its_error_answers(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        expected = ERRORS_EVERYWHERE | (ERRORS_WITH_BODY if "requestBody" in op else set())
        assert expected <= set(op["responses"]), f"{method.upper()} {path}: {sorted(op['responses'])}"
        for status in expected:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema["$ref"].startswith("#/components/schemas/")


def test_uploads_are_binary_fields_and_raw_images(document: dict[str, Any]) -> None:
    content = document["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    image = content["multipart/form-data"]["schema"]["properties"]["image"]
    assert image == {"type": "array", "items": {"type": "string", "format": "binary"}}
    assert content["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
    upload = document["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"]["format"] == "binary" and upload["required"] == ["file"]


def test_json_bodies_point_at_their_pydantic_schemas_and_errors_at_the_error_shape(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    body = document["paths"]["/infer/object_detection"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/ObjectDetectionRequest"
    assert "model_id" in schemas["ObjectDetectionRequest"]["properties"]
    error = document["paths"]["/v1/detect"]["post"]["responses"]["503"]["content"]["application/json"]["schema"]
    assert error["$ref"] == "#/components/schemas/Error"
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message"]
    deepstack = document["paths"]["/v1/vision/detection"]["post"]["responses"]["400"]["content"]
    assert deepstack["application/json"]["schema"]["$ref"] == "#/components/schemas/DeepStackErrorBody"


def test_the_docs_page_is_served(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), ModelRepository.scan(None))
    assert any(getattr(route, "path", None) == "/docs" for route in app.routes)


def test_statuses_found_by_schemathesis_are_documented(document: dict[str, Any]) -> None:
    # A cancel of an ended job is a 409; TF Serving, KServe and DeepStack answer bad parameters with
    # 400; KServe's readiness answers have no body at all.
    assert "409" in document["paths"]["/v1/jobs/{job_id}"]["delete"]["responses"]
    for path in ("/v1/models/{name}/metadata", "/v2/models/{name}", "/v1/vision/custom/list"):
        for operation in document["paths"][path].values():
            assert "400" in operation["responses"], path
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/{name}/ready"):
        responses = document["paths"][path]["get"]["responses"]
        assert "content" not in responses["200"] and "content" not in responses["400"]
        assert "content" in responses["404"]
