"""Label maps: class id to name, from a list, a mapping, or a file."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from visionserve.errors import InferenceError, ModelSpecError


class Labels:
    """The names of a model's outputs, immutable: class id to name (ids without a name read as
    ``class_<id>``) and, for pose models, keypoint names (``keypoint_<k>`` past the list) with the
    pairs of keypoint indices a skeleton joins."""

    __slots__ = ("_names", "keypoints", "skeleton")

    def __init__(
        self,
        names: Mapping[int, str],
        keypoints: Sequence[str] = (),
        skeleton: Sequence[tuple[int, int]] = (),
    ) -> None:
        self._names = dict(names)
        self.keypoints = tuple(keypoints)
        self.skeleton = tuple(skeleton)

    @classmethod
    def from_list(cls, names: list[str] | tuple[str, ...]) -> Labels:
        return cls(dict(enumerate(names)))

    def with_keypoints(self, keypoints: Sequence[str], skeleton: Sequence[tuple[int, int]] = ()) -> Labels:
        """The same class names with these keypoint names and skeleton."""
        return Labels(self._names, keypoints, skeleton)

    def name(self, class_id: int) -> str:
        return self._names.get(class_id, f"class_{class_id}")

    def keypoint_name(self, index: int) -> str:
        return self.keypoints[index] if 0 <= index < len(self.keypoints) else f"keypoint_{index}"

    def id_of(self, name: str) -> int | None:
        """The class id named ``name`` (case-insensitive), or None."""
        wanted = name.strip().lower()
        return next((i for i, n in self._names.items() if n.lower() == wanted), None)

    def has_id(self, class_id: int) -> bool:
        """Whether ``class_id`` is one of the model's classes. A model without a label map (no
        names at all) cannot say, so any non-negative id counts as one of its classes."""
        return class_id in self._names if self._names else class_id >= 0

    def as_dict(self) -> dict[int, str]:
        return dict(self._names)

    @property
    def num_classes(self) -> int:
        """One more than the largest id: the width of a dense class-score vector."""
        return max(self._names, default=-1) + 1

    def __len__(self) -> int:
        return len(self._names)


class LabelBook(Labels):
    """Labels that grow, for models that answer label names rather than ids (analysis modules).

    The declared names keep their ids; a name the model answers that is not among them gets the next
    free id (one more than the largest), in order of first appearance. An id once given never
    changes. Safe to share between threads: every addition replaces the maps, so that readers see
    one complete map or the next. At most ``limit`` names, so that a model answering ever new names
    cannot grow the book without bound (:class:`InferenceError` past it).
    """

    __slots__ = ("_ids", "_limit", "_lock")

    def __init__(self, declared: Labels, limit: int = 10_000) -> None:
        super().__init__(declared.as_dict(), declared.keypoints, declared.skeleton)
        # The lowest id wins when the declared map names one label twice.
        self._ids = {name: i for i, name in sorted(self._names.items(), reverse=True)}
        self._limit = limit
        self._lock = threading.Lock()

    def id_for(self, name: str) -> int:
        """The id of ``name`` (exact spelling), given now when it is new."""
        known = self._ids.get(name)
        if known is not None:
            return known
        with self._lock:
            known = self._ids.get(name)
            if known is not None:
                return known
            if len(self._names) >= self._limit:
                raise InferenceError(
                    f"the model answered more than {self._limit} different labels; declare them (labels.txt)"
                )
            new = self.num_classes
            self._names = {**self._names, new: name}
            self._ids = {**self._ids, name: new}
            return new


def read_labels_file(path: Path) -> Labels:
    """Read a labels file.

    ``.yaml``/``.yml``/``.json``: a list of names or a mapping of id to name. Otherwise text, one
    label a line: ``name`` (its id is the line's index among non-comment lines) or ``<id> <name>``.
    Lines starting with ``#`` are comments. Raises :class:`ModelSpecError` naming ``path`` for a file
    that cannot be read or parsed, or a mapping whose keys are not integers.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot read labels: {exc.strerror}") from exc
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        return _structured_labels(path, text)
    names: dict[int, str] = {}
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(line for line in lines if line and not line.startswith("#")):
        first, _, rest = line.partition(" ")
        if first.isdigit() and rest.strip():
            names[int(first)] = rest.strip()
        else:
            names[index] = line
    return Labels(names)


def _structured_labels(path: Path, text: str) -> Labels:
    """Labels from YAML or JSON ``text``: a list of names or a mapping of integer id to name."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelSpecError(f"{path}: labels are not valid YAML/JSON: {exc}") from exc
    if isinstance(data, list):
        return Labels.from_list([str(n) for n in data])
    if isinstance(data, dict):
        try:
            return Labels({int(k): str(v) for k, v in data.items()})
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(f"{path}: label ids must be integers: {exc}") from exc
    raise ModelSpecError(f"{path}: labels must be a list or a mapping of id to name")
