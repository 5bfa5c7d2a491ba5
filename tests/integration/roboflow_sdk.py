"""The HTTP calls of Roboflow's ``inference-sdk`` 1.8.3, replayed for the protocol tests.

The SDK itself cannot be installed beside visionserve (it pins numpy<2.4, pillow<13 and the
non-headless opencv-python<=4.13), so :class:`SdkCalls` replays what its ``InferenceHTTPClient``
sends in v1 mode with the default (legacy) key transport, read from its source: ``infer()`` first
lists ``GET /model/registry?api_key=<key>``, loads with ``POST /model/add`` when the model is not
listed, then posts to the route of the model's ``task_type`` (``NEW_INFERENCE_ENDPOINTS``:
``/infer/object_detection``, ``/infer/instance_segmentation``, ``/infer/classification``,
``/infer/keypoints_detection``) with ``api_key``, ``model_id``, the configuration's parameters and
the image as ``{"type": "base64", "value": ...}`` (a list for several images);
``unload_model()`` posts ``/model/remove`` with ``{"model_id"}`` only.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

#: inference-sdk's ``NEW_INFERENCE_ENDPOINTS``: the route of each registry ``task_type``.
ENDPOINTS = {
    "object-detection": "/infer/object_detection",
    "instance-segmentation": "/infer/instance_segmentation",
    "classification": "/infer/classification",
    "keypoint-detection": "/infer/keypoints_detection",
}


class SdkCalls:
    """The HTTP calls of ``InferenceHTTPClient(api_url, api_key)`` (v1 mode, legacy transport)."""

    def __init__(self, api_url: str, api_key: str | None = None) -> None:
        self.api_url, self.api_key = api_url, api_key

    def list_loaded_models(self) -> httpx.Response:
        return httpx.get(f"{self.api_url}/model/registry?api_key={self.api_key}", timeout=30)

    def load_model(self, model_id: str) -> httpx.Response:
        return httpx.post(f"{self.api_url}/model/add", json={"model_id": model_id, "api_key": self.api_key}, timeout=60)

    def unload_model(self, model_id: str) -> httpx.Response:
        return httpx.post(f"{self.api_url}/model/remove", json={"model_id": model_id}, timeout=60)

    def infer(self, images: list[bytes] | bytes, model_id: str, **configuration: Any) -> httpx.Response:
        registry = self.list_loaded_models().json()["models"]
        described = [m for m in registry if m["model_id"] == model_id]
        if not described:
            loaded = self.load_model(model_id)
            loaded.raise_for_status()
            described = [m for m in loaded.json()["models"] if m["model_id"] == model_id]
        items = images if isinstance(images, list) else [images]
        values = [{"type": "base64", "value": base64.b64encode(i).decode()} for i in items]
        payload = {"api_key": self.api_key, "model_id": model_id, **configuration}
        payload["image"] = values if isinstance(images, list) else values[0]
        route = ENDPOINTS[described[0]["task_type"]]
        return httpx.post(f"{self.api_url}{route}", json=payload, timeout=60)
