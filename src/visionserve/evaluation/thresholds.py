"""Per-class F1-optimal thresholds saved where the model repository reads them (``conf=best``).

- A model of the repository (a folder with a ``model.yaml``, or a ``model.yaml`` given by path):
  ``thresholds.yaml`` beside its ``model.yaml``.
- A built-in model: ``<repository>/<name>/thresholds.yaml`` (a folder without a ``model.yaml``
  replaces nothing); this needs a repository folder (``--models`` / ``VISIONSERVE_MODELS``), the one
  the server is started with.
- A bare model file (no ``model.yaml``) cannot keep thresholds: write a ``model.yaml`` for it.

The file lists ``classes: {label: threshold}``; classes it does not list keep the model's ``conf``.
A server reads it at start.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from visionserve.errors import InvalidParameterError
from visionserve.models.repository import ModelRepository, builtin_thresholds_path
from visionserve.models.spec import SPEC_FILENAME, THRESHOLDS_FILENAME, ModelSpec


def thresholds_path(spec: ModelSpec, repository: ModelRepository) -> Path:
    """Where ``spec``'s thresholds go (see the module docstring); raises :class:`InvalidParameterError`
    for a built-in model without a repository folder, or a bare model file."""
    if spec.name in repository.builtin and repository.specs.get(spec.name) is spec:
        if repository.root is None:
            raise InvalidParameterError(
                f"model {spec.name!r} is built in: its thresholds are kept in the model repository "
                f"(<repository>/{spec.name}/{THRESHOLDS_FILENAME}); give it with --models DIR or VISIONSERVE_MODELS"
            )
        return builtin_thresholds_path(repository.root, spec.name)
    if not (spec.root / SPEC_FILENAME).is_file():
        raise InvalidParameterError(
            f"model {spec.name!r} has no {SPEC_FILENAME}: write one for it to keep per-class thresholds beside it"
        )
    return spec.root / THRESHOLDS_FILENAME


def best_thresholds(report: dict[str, Any]) -> dict[str, float]:
    """Label to F1-optimal threshold for each class of ``report`` that has one."""
    return {row["label"]: row["best_conf"] for row in report["classes"] if row.get("best_conf") is not None}


def save_thresholds(path: Path, report: dict[str, Any], source: str) -> dict[str, float]:
    """Write the F1-optimal thresholds of ``report`` to ``path``; the thresholds written. Raises
    :class:`InvalidParameterError` when no class has one (nothing was ever found)."""
    chosen = best_thresholds(report)
    if not chosen:
        raise InvalidParameterError("no class has an F1-optimal threshold (the model matched no object): nothing saved")
    document = {
        "model": report["model"],
        "version": report["version"],
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "evaluated_on": source,
        "images": report["evaluated_images"],
        "method": "per class, the detection score that maximises F1 at IoU 0.5 (visionserve eval)",
        "classes": chosen,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Per-class confidence thresholds for conf=best, written by `visionserve eval --save-thresholds`.\n"
    path.write_text(text + yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return chosen
