"""The Python client of a visionserve server: :class:`Client` (blocking) and :class:`AsyncClient`.

>>> from visionserve.client import Client
>>> with Client("http://127.0.0.1:8000") as client:          # doctest: +SKIP
...     result = client.detect("photo.jpg", conf=0.5)
...     print(result.labels, result.detections.xyxy)
...     answer = client.predict("photo.jpg", "my-seg")         # any task
...     print(answer.task, answer.labels, answer.prediction)
"""

from visionserve.client._predictions import MaskFormat, PredictionResult
from visionserve.client._protocol import DetectionResult, ImageSource, ModelInfo, RetryPolicy
from visionserve.client.aio import AsyncClient
from visionserve.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "DetectionResult",
    "ImageSource",
    "MaskFormat",
    "ModelInfo",
    "PredictionResult",
    "RetryPolicy",
]
