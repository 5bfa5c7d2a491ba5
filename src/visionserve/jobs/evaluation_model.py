"""The options of an evaluation job (see :mod:`visionserve.jobs.evaluation_jobs`), stored with the job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionserve.evaluation.inputs import SetFormat


@dataclass(frozen=True)
class EvaluateOptions:
    """How to read the archive: ``format`` (None: guessed from its layout) and whether classes the
    model lacks are left out (``skip_unknown``) rather than refused."""

    format: SetFormat | None = None
    skip_unknown: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"format": None if self.format is None else self.format.value, "skip_unknown": self.skip_unknown}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluateOptions:
        fmt = data.get("format")
        return cls(None if fmt is None else SetFormat(fmt), bool(data.get("skip_unknown", False)))
