"""One KServe v2 inference, whatever carries it (HTTP JSON/binary bodies or gRPC messages).

Both transports parse their request into a :class:`~visionserve.api.wire.kserve_v2.ParsedInfer`,
call :func:`infer` (same model check, outputs, thresholds and service call, so the same batching)
and render the :class:`InferOutcome` in their own shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy.typing as npt

from visionserve.api.wire import kserve_v2 as v2
from visionserve.api.wire.kserve_outputs import ImagePrediction, OutputName, WantedOutput, output_tensors
from visionserve.errors import ModelNotFoundError
from visionserve.serving.service import DetectionService


@dataclass(frozen=True)
class InferOutcome:
    """The answer of one inference: the model and version that gave it, and the wanted outputs' tensors."""

    model: str
    version: str
    wanted: list[WantedOutput]
    tensors: dict[OutputName, npt.NDArray[Any]]


def checked_model(service: DetectionService, name: str, version: str | None) -> str:
    """``name`` checked to exist and, when ``version`` is given (not None or empty), to have it.

    Raises :class:`ModelNotFoundError`."""
    spec = service.spec(name)
    if version and version != spec.version:
        raise ModelNotFoundError(f"model '{name}' has no version '{version}' (it has '{spec.version}')")
    return name


async def infer(service: DetectionService, name: str, parsed: v2.ParsedInfer) -> InferOutcome:
    """Run ``parsed`` on the model ``name`` (already checked): the requested outputs are checked against
    the model's task before any image is decoded; the classification extension raises ``top_k``.

    Raises what :func:`~visionserve.api.wire.kserve_v2.requested_outputs`,
    :func:`~visionserve.api.wire.kserve_v2.image_inputs` and :meth:`DetectionService.detect` raise."""
    wanted = v2.requested_outputs(parsed.request, service.spec(name).task, name)
    labels = service.labels(name)
    options = v2.request_options(parsed.request).to_predict_options(labels)
    count = v2.classification_count(wanted)
    if count is not None:
        options = replace(options, top_k=max(count, options.top_k or 0))
    results = await service.detect(name, v2.image_inputs(parsed), options)
    found = [ImagePrediction(result.prediction, result.width, result.height) for result in results]
    return InferOutcome(name, results[0].version, wanted, output_tensors(wanted, found, labels))
