"""The HTTP-free serving layer: loaded models, their instances and batchers, and the detection
service that every interface calls (:class:`~visionserve.serving.service.DetectionService`)."""

from visionserve.serving.manager import ModelState, ModelStatus
from visionserve.serving.service import DetectionService, ImageResult, Readiness, ServiceConfig, Timings

__all__ = ["DetectionService", "ImageResult", "ModelState", "ModelStatus", "Readiness", "ServiceConfig", "Timings"]
