"""Importing an analysis module's ``main.py`` and building its class, as its own platform did.

Seed modules were written to be run from their own folder: ``main.py`` imports its neighbours either
relatively (``from .utils import x``) or by bare name (``import utils``), and the class's constructor
opens its files by bare relative paths (``open("weights.bin")``). Both work here:

* ``main.py`` is loaded by location as ``visionserve_modules.<namespace>.main``, a submodule of a
  package whose path is the module's folder, so relative imports find its neighbours;
* while ``main.py`` runs and while the class is built, the folder is first on ``sys.path`` and is the
  working directory. Both are process-wide, so this happens under one lock, and is undone at once:
  the neighbours imported by bare name are then removed from ``sys.modules`` (the module keeps its
  references: two modules with a ``utils.py`` each never share one), and any module of the same
  name that they hid is put back.

Bare relative paths therefore work at import and in the constructor only; code that opens files
later (in ``inference_by_path``) must build them from ``os.path.dirname(__file__)``, which is the
module's real folder. Other threads of the server must not rely on the working directory (visionserve
resolves its own paths before serving).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from visionserve.errors import ModelLoadError

#: The package under which modules are loaded (``visionserve_modules.<model name>.main``).
_ROOT = "visionserve_modules"
#: Held while a module's file runs or its class is built (``sys.path`` and the working directory
#: are the process's).
_BUILDING = threading.Lock()
#: Constructor parameters that receive the device: the device string, or the GPU index (-1 on CPU).
DEVICE_PARAMETERS = frozenset({"device"})
GPU_PARAMETERS = frozenset({"gpu", "gpu_id", "device_id"})


def build_module(
    folder: Path, file: str, class_name: str, namespace: str, options: Mapping[str, Any], device: str | None
) -> Any:
    """Import ``folder/file`` and build its ``class_name``, both inside the folder (see the module
    docstring), with ``options`` as keyword arguments and the device ones of :func:`device_arguments`.
    Any failure is a :class:`ModelLoadError` that names the folder."""
    folder = folder.resolve()
    unique = f"{_ROOT}." + re.sub(r"\W", "_", namespace)
    try:
        with _BUILDING, _inside(folder):
            module = _import(unique, folder, folder / file)
            cls = getattr(module, class_name, None)
            if not inspect.isclass(cls) or not callable(getattr(cls, "inference_by_path", None)):
                raise ModelLoadError(
                    f"analysis module {folder}: {file} has no class {class_name!r} with an inference_by_path method"
                )
            return cls(**{**device_arguments(cls, device), **options})
    except ModelLoadError:
        raise
    except Exception as exc:  # the module's import or constructor may raise anything
        raise ModelLoadError(f"analysis module {folder} failed to load: {type(exc).__name__}: {exc}") from exc


def device_arguments(cls_or_instance: Any, device: str | None) -> dict[str, Any]:
    """The keyword arguments that tell the constructor of ``cls_or_instance`` its device, when the
    spec put it on one (``device``: ``cpu`` or ``cuda:N``): ``device="cuda:N"`` for a ``device``
    parameter, ``gpu=N`` (-1 on the CPU) for ``gpu``, ``gpu_id`` or ``device_id``; nothing for a
    constructor that takes none of them (it picks its device itself, e.g. from ``CUDA_VISIBLE_DEVICES``)."""
    if device is None:
        return {}
    try:
        parameters = inspect.signature(cls_or_instance).parameters
    except (TypeError, ValueError):
        return {}
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else -1
    found: dict[str, Any] = {}
    for name in parameters:
        if name in DEVICE_PARAMETERS:
            found[name] = device
        elif name in GPU_PARAMETERS:
            found[name] = index
    return found


def _import(unique: str, folder: Path, file: Path) -> ModuleType:
    """Run ``file`` afresh as ``<unique>.main`` (the package ``unique`` searches ``folder``)."""
    for name in [name for name in sys.modules if name == unique or name.startswith(f"{unique}.")]:
        del sys.modules[name]
    # ``from . import x`` ends in ``__import__("visionserve_modules.<ns>.x")``, which returns the top
    # package: it must exist (an empty one, searching nowhere).
    if _ROOT not in sys.modules:
        sys.modules[_ROOT] = _package(_ROOT, [])
    sys.modules[unique] = _package(unique, [str(folder)])
    name = f"{unique}.{file.stem}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise ModelLoadError(f"cannot load {file}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _package(name: str, locations: list[str]) -> ModuleType:
    """An empty package ``name`` whose submodules are searched in ``locations``."""
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    if spec is None:
        raise ModelLoadError(f"cannot make the package {name}")
    spec.submodule_search_locations = locations
    return importlib.util.module_from_spec(spec)


def _neighbours(folder: Path) -> set[str]:
    """Top-level module names that the files and packages of ``folder`` would take."""
    names = {path.stem for path in folder.glob("*.py")}
    names |= {path.parent.name for path in folder.glob("*/__init__.py")}
    return names


def _inside_folder(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(folder)


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` and the working directory, then everything as it was."""
    hidden = {name: sys.modules.pop(name) for name in _neighbours(folder) if name in sys.modules}
    before = set(sys.modules)
    cwd = os.getcwd()
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if not name.startswith(f"{_ROOT}.") and module is not None and _inside_folder(module, folder):
                del sys.modules[name]
        sys.modules.update(hidden)
