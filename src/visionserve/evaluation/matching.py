"""Class names of an evaluation set matched to a model's labels, by name, never by id (the TF label
map has gaps, Ultralytics counts from 0, a labelling tool numbers in its own order).

Names compare case-insensitively, with ``_`` read as a space and runs of spaces collapsed
(``traffic_light`` is ``Traffic Light``). A label with comma-separated synonyms (ImageNet's
``tabby, tabby cat``) also answers to each synonym, unless another label is called that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from visionserve.errors import UnmatchedClassesError
from visionserve.models.labels import Labels

#: At most this many of the model's labels are listed in an error.
LISTED_LABELS = 30


def normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _index(labels: Labels) -> dict[str, int]:
    """Normalised name (and synonym) to class id; whole names win over synonyms."""
    index: dict[str, int] = {}
    names = labels.as_dict()
    for class_id, name in sorted(names.items()):
        for synonym in name.split(","):
            index.setdefault(normalise(synonym), class_id)
    for class_id, name in sorted(names.items()):
        index[normalise(name)] = class_id
    return index


@dataclass(frozen=True)
class Matching:
    """``to_model``: the set's category id to the model's class id; ``skipped``: the set's class
    names that the model lacks (left out of the evaluation when allowed)."""

    to_model: dict[int, int]
    skipped: tuple[str, ...] = ()

    @property
    def to_set(self) -> dict[int, int]:
        """The model's class id to the set's category id."""
        return {model: category for category, model in self.to_model.items()}


def match_classes(categories: Mapping[int, str], labels: Labels, source: str, skip_unknown: bool = False) -> Matching:
    """Match each category name to a label. Names the model lacks raise :class:`UnmatchedClassesError`
    listing all of them (and some of the model's labels), unless ``skip_unknown``."""
    index = _index(labels)
    to_model: dict[int, int] = {}
    missing: list[str] = []
    for category, name in sorted(categories.items()):
        class_id = index.get(normalise(name))
        if class_id is None:
            missing.append(name)
        else:
            to_model[category] = class_id
    if missing and not skip_unknown:
        known = sorted(labels.as_dict().values())
        shown = ", ".join(known[:LISTED_LABELS]) + (f" ... ({len(known)} labels)" if len(known) > LISTED_LABELS else "")
        raise UnmatchedClassesError(
            f"{source}: {len(missing)} class name(s) are not among the model's labels: "
            f"{', '.join(repr(m) for m in missing)}. The model's labels: {shown}. Rename them, or skip "
            "their objects (--skip-unknown-classes; skip_unknown=true over HTTP)"
        )
    return Matching(to_model, tuple(missing))
