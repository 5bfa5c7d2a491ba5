"""The HTTP-free serving layer: loaded models, their instances and batchers, and the detection
service that every interface calls (:class:`~visionserve.serving.service.DetectionService`)."""

from visionserve.serving.results import ImageResult, ModelState, ModelStatus, Timings
from visionserve.serving.service import DetectionService, Readiness, ServiceConfig

__all__ = ["DetectionService", "ImageResult", "ModelState", "ModelStatus", "Readiness", "ServiceConfig", "Timings"]
