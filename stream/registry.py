"""Elements by factory name, so a launch string and ``inspect`` can find them.

Element modules register themselves with ``@register`` when imported (all of them on the first lookup).
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

from cleanfeed.errors import UnknownElementError
from cleanfeed.stream.element import Element

_FACTORIES: dict[str, type[Element]] = {}


def register(cls: type[Element]) -> type[Element]:
    if not cls.factory:
        raise TypeError(f"{cls.__name__} has no factory name")
    if cls.factory in _FACTORIES and _FACTORIES[cls.factory] is not cls:
        raise TypeError(f"element {cls.factory!r} registered twice")
    _FACTORIES[cls.factory] = cls
    return cls


@functools.cache
def _load() -> None:
    """Imports every module of cleanfeed.stream.elements once; each registers its elements."""
    import importlib
    import pkgutil

    from cleanfeed.stream import elements

    for module in pkgutil.iter_modules(elements.__path__):
        importlib.import_module(f"cleanfeed.stream.elements.{module.name}")


def factories() -> dict[str, type[Element]]:
    _load()
    return dict(sorted(_FACTORIES.items()))


def lookup(factory: str) -> type[Element]:
    _load()
    try:
        return _FACTORIES[factory]
    except KeyError:
        close = difflib.get_close_matches(factory, list(_FACTORIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; `cleanfeed inspect` lists them"
        raise UnknownElementError(f"no element named {factory!r}{hint}") from None


def create(factory: str, props: dict[str, Any] | None = None, name: str | None = None) -> Element:
    return lookup(factory)(name=name, **(props or {}))
