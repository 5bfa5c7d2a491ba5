"""``/v1/models``: what is served, and loading or unloading a model at run time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from visionserve.api.deps import ServiceDep
from visionserve.api.metrics import tag_model
from visionserve.api.wire.native import ModelDocument, ModelList, model_document

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList, summary="Every model of the repository and its state")
async def list_models(service: ServiceDep) -> dict[str, Any]:
    return {"models": [model_document(status) for status in service.models()], "default": service.default_model}


@router.get("/{name}", response_model=ModelDocument, summary="One model: labels, input, thresholds, state")
async def get_model(name: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    tag_model(request, service.resolve_name(name))  # known names only: no label per typo
    return model_document(service.model(name))


@router.post("/{name}/load", response_model=ModelDocument, summary="Load and warm up a model")
async def load_model(name: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    tag_model(request, service.resolve_name(name))
    return model_document(await service.load(name))


@router.post("/{name}/unload", response_model=ModelDocument, summary="Unload a model (queued requests finish)")
async def unload_model(name: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    tag_model(request, service.resolve_name(name))
    return model_document(await service.unload(name))
