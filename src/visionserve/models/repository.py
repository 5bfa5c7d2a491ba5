"""The model repository: a folder with one sub-folder (holding a ``model.yaml``) per model.

A folder with a ``main.py`` and no ``model.yaml`` is an analysis module (see
:mod:`visionserve.models.module_specs`). The built-in models (:mod:`visionserve.models.builtin`, the
default model first) are always present, even with no folder at all; a folder that defines a model of
the same name replaces the built-in. A ``model.yaml`` that does not validate does not hide the
others: it is listed with its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from visionserve.errors import ModelNotFoundError, ModelSpecError
from visionserve.models.builtin import builtin_specs
from visionserve.models.default import DEFAULT_MODEL_NAME
from visionserve.models.module_specs import folder_spec, is_module_folder
from visionserve.models.spec import SPEC_FILENAME, THRESHOLDS_FILENAME, ModelSpec, load_spec, read_class_conf

#: Suffixes of model files that can be served without a ``model.yaml``.
BARE_MODEL_SUFFIXES = frozenset({".onnx", ".pb", ".weights", ".cfg"})


#: An unknown name is echoed up to this many characters, and at most this many known names are listed.
ECHO_CHARS = 100
LISTED_NAMES = 20


def builtin_thresholds_path(root: Path, name: str) -> Path:
    """Where the per-class thresholds of the built-in model ``name`` live in the repository ``root``:
    ``<root>/<name>/thresholds.yaml`` (a folder without a ``model.yaml`` replaces nothing)."""
    return root / name / THRESHOLDS_FILENAME


def _with_saved_thresholds(spec: ModelSpec, root: Path | None) -> ModelSpec:
    """A built-in ``spec`` with the thresholds saved for it under ``root`` (see :func:`builtin_thresholds_path`)."""
    if root is None or not root.is_dir():
        return spec
    saved = read_class_conf(builtin_thresholds_path(root, spec.name))
    return spec.model_copy(update={"class_conf": {**spec.class_conf, **saved}}) if saved else spec


def unknown_model(name: str, known: Sequence[str]) -> ModelNotFoundError:
    """The error for an unknown model ``name``: the name shortened to :data:`ECHO_CHARS` characters
    and at most :data:`LISTED_NAMES` of the ``known`` names (a 1 MB name must not come back whole)."""
    shown = name if len(name) <= ECHO_CHARS else name[:ECHO_CHARS] + "..."
    listed = ", ".join(known[:LISTED_NAMES])
    if len(known) > LISTED_NAMES:
        listed += f" and {len(known) - LISTED_NAMES} more (GET /v1/models lists them all)"
    return ModelNotFoundError(f"unknown model {shown!r}; available: {listed}")


def _model_folders(root: Path) -> list[Path]:
    """The folders of ``root`` that hold a model: a ``model.yaml``, or a ``main.py`` (an analysis
    module, see :mod:`visionserve.models.module_specs`), sorted by name."""
    return sorted(
        folder
        for folder in root.iterdir()
        if folder.is_dir() and ((folder / SPEC_FILENAME).is_file() or is_module_folder(folder))
    )


@dataclass(frozen=True)
class ModelRepository:
    """Specs found under ``root`` at construction (call :meth:`rescan` for a fresh view).

    ``specs`` maps names to valid specs; ``broken`` maps folder names to their validation error;
    ``builtin`` names the specs that are built-in (not replaced by a folder).
    """

    root: Path | None
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    default_name: str = DEFAULT_MODEL_NAME
    builtin: frozenset[str] = frozenset()
    builtins: tuple[ModelSpec, ...] = field(default=(), repr=False)  # what rescan starts from

    @classmethod
    def scan(cls, root: Path | None, builtins: Sequence[ModelSpec] | None = None) -> ModelRepository:
        """Read every ``<root>/<folder>/model.yaml`` beside the built-in specs (``builtins``, default
        :func:`~visionserve.models.builtin.builtin_specs`; the first is the default model). A folder
        that defines a built-in's name replaces it; two folders of one name: the second is broken."""
        builtins = builtin_specs() if builtins is None else builtins
        if not builtins:
            raise ValueError("a repository needs at least one built-in spec: the default model")
        specs: dict[str, ModelSpec] = {spec.name: _with_saved_thresholds(spec, root) for spec in builtins}
        broken: dict[str, str] = {}
        found: set[str] = set()
        if root is not None:
            if not root.is_dir():
                raise ModelSpecError(f"model repository {root} is not a folder")
            for folder in _model_folders(root):
                try:
                    spec = folder_spec(folder)
                except ModelSpecError as exc:
                    broken[folder.name] = str(exc)
                    continue
                if spec.name in found:
                    broken[folder.name] = f"{spec.source}: field 'name': {spec.name!r} is already defined"
                    continue
                found.add(spec.name)
                specs[spec.name] = spec
        builtin = frozenset(spec.name for spec in builtins) - found
        return cls(root, specs, broken, builtins[0].name, builtin, tuple(builtins))

    def rescan(self) -> ModelRepository:
        return ModelRepository.scan(self.root, self.builtins or None)

    def names(self) -> list[str]:
        return sorted(self.specs)

    def get(self, name: str) -> ModelSpec:
        """The spec called ``name``; raises :class:`ModelNotFoundError` (or the validation error of a
        broken ``model.yaml`` in a folder of that name)."""
        if name in self.specs:
            return self.specs[name]
        if name in self.broken:
            raise ModelSpecError(self.broken[name])
        raise unknown_model(name, self.names())

    def resolve(self, name_or_path: str | None) -> ModelSpec:
        """A model by name, or by path: a ``model.yaml``, a folder holding one, or a bare model file
        (``.onnx``, ``.pb``, ``.cfg``/``.weights``) whose spec is inferred. None means the default."""
        if name_or_path is None:
            return self.specs[self.default_name]
        if name_or_path in self.specs or name_or_path in self.broken:
            return self.get(name_or_path)
        path = Path(name_or_path)
        if path.is_dir() and ((path / SPEC_FILENAME).is_file() or is_module_folder(path)):
            return folder_spec(path)
        if path.is_file() and path.suffix in {".yaml", ".yml"}:
            return load_spec(path)
        if path.is_file() and path.suffix.lower() in BARE_MODEL_SUFFIXES:
            from visionserve.models.autospec import spec_for_file

            return spec_for_file(path)
        return self.get(name_or_path)
