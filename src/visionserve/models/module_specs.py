"""Finding analysis modules in the model repository: a folder whose ``main.py`` holds a class with an
``inference_by_path(image_path)`` method (see :mod:`visionserve.modules` for how one is served).

Such a folder needs no ``model.yaml``; when it has one, ``name`` defaults to the folder's name and
``backend`` to ``module``, and ``module: {class: Main}`` names the class::

    module: {class: Main, file: main.py, image_format: png}
    labels: labels.txt          # or a list; without it, a labels.txt beside main.py is used
    thresholds: {conf: 0.5}     # default 0: the module's answers are kept as they come
    options: {weights: big}     # keyword arguments of the class's constructor

Without a named class, ``main.py`` must define exactly one class with ``inference_by_path`` (found by
reading the file, without running it); none or several is an error that names the folder.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from visionserve.errors import ModelSpecError
from visionserve.models.spec import SPEC_FILENAME, BackendKind, ModelSpec, load_spec, spec_from_mapping

#: The file that makes a folder an analysis module.
MAIN_FILE = "main.py"
#: The method an analysis module's class answers.
METHOD = "inference_by_path"
#: Label files looked for beside ``main.py`` when the spec names none, in this order.
LABEL_FILES = ("labels.txt", "labels.yaml", "labels.json")


def is_module_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``main.py`` (an analysis module, with or without ``model.yaml``)."""
    return (folder / MAIN_FILE).is_file()


def is_module_yaml(data: Any) -> bool:
    """Whether a parsed ``model.yaml`` beside a ``main.py`` describes the module: it says
    ``backend: module``, or names no backend at all."""
    return isinstance(data, dict) and data.get("backend", BackendKind.MODULE.value) == BackendKind.MODULE.value


def read_yaml(path: Path) -> Any:
    """The parsed ``path``; :class:`ModelSpecError` naming it when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ModelSpecError(f"{path}: not valid YAML: {exc}") from exc


def module_spec(folder: Path, data: Any = None) -> ModelSpec:
    """The spec of the module in ``folder``, from its parsed ``model.yaml`` ``data`` (None: no yaml).

    The class is resolved here (named, or the only one in the file), and a label file beside
    ``main.py`` is used when the spec names no labels. Raises :class:`ModelSpecError` naming the folder.
    """
    source = str(folder / SPEC_FILENAME) if data is not None else str(folder)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelSpecError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    spec = spec_from_mapping({"name": folder.name, "backend": BackendKind.MODULE.value, **data}, source, folder)
    section = spec.module
    if section is None:  # validation always sets it for backend 'module'
        raise ModelSpecError(f"{source}: field 'backend' must be 'module' beside {MAIN_FILE}")
    if section.class_name is None:
        section = section.model_copy(update={"class_name": find_module_class(folder / section.file)})
    update: dict[str, Any] = {"module": section}
    if "labels" not in data:
        found = next((name for name in LABEL_FILES if (folder / name).is_file()), None)
        if found is not None:
            update["labels"] = Path(found)
    return spec.model_copy(update=update)


def find_module_class(file: Path) -> str:
    """The name of the one top-level class of ``file`` that defines ``inference_by_path``.

    The file is parsed, never run. Raises :class:`ModelSpecError` naming the folder when the file
    cannot be read or parsed, or defines none or several such classes.
    """
    folder = file.parent
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except OSError as exc:
        raise ModelSpecError(f"analysis module {folder}: cannot read {file.name}: {exc.strerror}") from exc
    except (SyntaxError, ValueError) as exc:
        raise ModelSpecError(f"analysis module {folder}: {file.name} is not valid Python: {exc}") from exc
    found = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == METHOD for item in node.body)
    ]
    if len(found) == 1:
        return found[0]
    hint = f"name it in {SPEC_FILENAME} as 'module: {{class: ClassName}}'"
    if not found:
        raise ModelSpecError(f"analysis module {folder}: {file.name} defines no class with a {METHOD} method; {hint}")
    raise ModelSpecError(
        f"analysis module {folder}: {file.name} defines {len(found)} classes with a {METHOD} method "
        f"({', '.join(found)}); {hint}"
    )


def folder_spec(folder: Path) -> ModelSpec:
    """The spec of a repository folder: an analysis module (``main.py``, with a module ``model.yaml``
    or none), or the model its ``model.yaml`` describes. Raises :class:`ModelSpecError`."""
    yaml_path = folder / SPEC_FILENAME
    if not is_module_folder(folder):
        return load_spec(yaml_path)
    if not yaml_path.is_file():
        return module_spec(folder)
    data = read_yaml(yaml_path)
    return module_spec(folder, data) if is_module_yaml(data) else spec_from_mapping(data, str(yaml_path), folder)
