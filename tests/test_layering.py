"""Dependencies point inward: the core knows nothing of HTTP, Celery or SQL (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "visionserve"

#: Third-party package -> the only places (relative to src/visionserve) allowed to import it.
ONLY_IN = {
    "fastapi": ("api/",),
    "starlette": ("api/",),
    "uvicorn": ("api/", "cli/serve.py"),
    "celery": ("jobs/celery_app.py",),
    "kombu": ("jobs/celery_app.py",),
    "sqlalchemy": ("storage/",),
    "alembic": ("storage/",),
    "onnxruntime": ("backends/onnxruntime.py",),
    "ai_edge_litert": ("backends/litert.py",),
    "grpc": ("api/",),
    "google": ("api/",),  # protobuf
}
#: Packages of visionserve that core/ must not import.
CORE_MAY_IMPORT = {"visionserve.errors", "visionserve.types", "visionserve.core"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_third_party_imports_stay_in_their_layer(path: Path) -> None:
    relative = path.relative_to(SRC).as_posix()
    for name in imports(path):
        allowed = ONLY_IN.get(name.split(".")[0])
        if allowed is not None:
            assert relative.startswith(allowed), f"{relative} imports {name}: only {allowed} may"


@pytest.mark.parametrize("path", sorted((SRC / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_core(path: Path) -> None:
    for name in imports(path):
        if name.startswith("visionserve"):
            assert any(name == m or name.startswith(m + ".") for m in CORE_MAY_IMPORT), f"core imports {name}"


#: Internal edges: modules under the first path may not import the visionserve packages listed.
#: Wire codecs are pure (they read the serving layer's values in serving/results.py, never its
#: machinery, and draw nothing themselves); settings know nothing of jobs; core and the prediction
#: values know nothing of HTTP, storage or serving; the per-frame parts of streams (tracker, zones, motion
#: gate, overlays) are pure: no HTTP, serving or stream machinery.
FORBIDDEN_INTERNAL = {
    "api/wire/": ("visionserve.serving.service", "visionserve.serving.manager", "visionserve.serving.instances",
                  "visionserve.serving.threads", "visionserve.jobs", "visionserve.storage", "cv2"),
    "settings.py": ("visionserve.jobs", "visionserve.storage", "visionserve.serving", "visionserve.api"),
    "render/": ("visionserve.serving", "visionserve.api", "visionserve.jobs", "visionserve.storage"),
    "decoders/": ("visionserve.serving", "visionserve.api", "visionserve.jobs", "visionserve.pipeline"),
    "jobs/": ("visionserve.api", "visionserve.serving.manager", "visionserve.serving.threads",
              "visionserve.batching.batcher"),
    **{f"streams/{pure}.py": ("visionserve.api", "visionserve.serving", "visionserve.jobs", "visionserve.storage",
                              "visionserve.batching", "visionserve.streams.session", "visionserve.streams.hub",
                              "visionserve.streams.sources")
       for pure in ("kalman", "tracking", "zones", "motion", "overlays", "analysis")},
}  # fmt: skip


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_internal_edges(path: Path) -> None:
    relative = path.relative_to(SRC).as_posix()
    for prefix, forbidden in FORBIDDEN_INTERNAL.items():
        if not relative.startswith(prefix):
            continue
        for name in imports(path):
            bad = [f for f in forbidden if name == f or name.startswith(f + ".")]
            assert not bad, f"{relative} imports {name}: {prefix} may not import {', '.join(bad)}"
