"""Which models a server loads at start (the ``preload`` setting); the others load on their first
request.

The setting is one keyword or a comma-separated list of model names:

* ``auto`` (the default): the default model and every model of the user's repository folder;
  the other built-in models load on their first request, so a server that only detects does not
  pay for them;
* ``all``: every model; ``none``: no model (each loads on its first request);
* ``name1,name2``: exactly these models (unknown names are a :class:`ConfigError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from visionserve.errors import ConfigError
from visionserve.models.repository import ModelRepository


class Preload(StrEnum):
    AUTO = "auto"
    ALL = "all"
    NONE = "none"


def parse_preload(value: str | Sequence[str]) -> str:
    """``value`` (a comma-separated string, or a list from YAML) normalised: a keyword in lower case,
    or names joined by commas without blanks. Raises ValueError for an empty value or a keyword
    mixed with names."""
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    names = [item.strip() for item in items if item.strip()]
    if not names:
        raise ValueError(f"give {', '.join(Preload)} or model names")
    keywords = [name for name in names if name.lower() in set(Preload)]
    if keywords and len(names) > 1:
        raise ValueError(f"{keywords[0]!r} cannot be combined with other entries")
    return keywords[0].lower() if keywords else ",".join(dict.fromkeys(names))


def preload_names(policy: str, repository: ModelRepository) -> frozenset[str]:
    """The names of ``repository`` that load at start under ``policy`` (see the module docstring;
    folders whose ``model.yaml`` does not validate are never loaded). Raises :class:`ConfigError`
    naming the models that the repository does not hold."""
    every = set(repository.names()) | set(repository.broken)
    try:
        normalised = parse_preload(policy)
    except ValueError as exc:
        raise ConfigError(f"preload: {exc}") from exc
    if normalised == Preload.ALL:
        return frozenset(every)
    if normalised == Preload.NONE:
        return frozenset()
    if normalised == Preload.AUTO:
        return frozenset(every - repository.builtin) | {repository.default_name}
    names = normalised.split(",")
    unknown = [name for name in names if name not in every]
    if unknown:
        raise ConfigError(
            f"preload: unknown model(s) {', '.join(unknown)}; the repository holds {', '.join(sorted(every))}"
        )
    return frozenset(names)
