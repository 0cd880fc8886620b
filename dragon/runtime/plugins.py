"""Finding the modules that extend dragon: built-ins, modules named in settings, entry points.

Tasks and stores are extended the same way, so they share this loader: the built-in
modules of a package, then the dotted names a setting lists (``DRAGON_TASK_MODULES``,
``DRAGON_STORE_MODULES``), then the modules an installed distribution declares under an
entry point group (``dragon.tasks``, ``dragon.stores``). A registry keyed by name refuses a
second entry of the same name, so two modules can never silently shadow each other.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from importlib import metadata
from types import ModuleType
from typing import Generic, TypeVar

T = TypeVar("T")


class AlreadyRegistered(Exception):
    """Two modules declared the same name."""


def package_modules(package: ModuleType) -> Iterator[ModuleType]:
    """Every public module of ``package`` (names without a leading underscore), by name."""
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{package.__name__}.{info.name}")


def plugin_modules(group: str, names: Iterable[str] = ()) -> Iterator[ModuleType]:
    """The modules named in settings (dotted names), then those of entry point ``group``.

    An entry point may name a module (``plugin = mypkg.tasks.blur``) or an attribute of one
    (``mypkg.tasks.blur:run``); either way its module is what is registered.
    """
    for name in names:
        yield importlib.import_module(name)
    for entry in metadata.entry_points(group=group):
        yield importlib.import_module(entry.module)


def dotted_names(setting: str) -> tuple[str, ...]:
    """A comma-separated setting as module names, blanks dropped."""
    return tuple(part.strip() for part in setting.split(",") if part.strip())


class Registry(Generic[T]):
    """Entries by name, each remembering the module that declared it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, T] = {}
        self.origins: dict[str, str] = {}

    def add(self, name: str, entry: T, origin: str) -> None:
        if name in self.entries:
            raise AlreadyRegistered(
                f"{self.kind} {name!r} is declared by {origin} and by {self.origins[name]}"
            )
        self.entries[name] = entry
        self.origins[name] = origin

    def names(self) -> list[str]:
        return sorted(self.entries)
