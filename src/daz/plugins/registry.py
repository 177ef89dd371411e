"""Which plugins exist, found rather than listed, and the order they start and migrate in.

* Built-ins: every sub-package of ``daz.plugins`` that defines exactly one ``Plugin`` subclass.
* Third-party: every entry point in the group ``daz.plugins`` (``pip install`` is all it takes);
  the entry point names a ``Plugin`` subclass, or a module that defines exactly one.
* Order: each plugin names the plugins it must come after (``after = ("sql",)``); the order is a
  topological sort of those declarations, ties broken by name so it never depends on the file
  system or the install order. A name in ``after`` that is not installed is ignored; a cycle is
  an error naming the plugins in it.

A third-party plugin that fails to import, or that reuses a built-in's name, is logged and left
out: one broken package must not keep the bot from starting.
"""
from __future__ import annotations

import heapq
import importlib
import inspect
import logging
import pkgutil
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import daz.plugins
from daz.plugins.base import Plugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "daz.plugins"


class PluginOrderError(RuntimeError):
    """The plugins' ``after`` declarations contradict each other."""


def plugin_class_in(module: ModuleType) -> type[Plugin]:
    """The one Plugin subclass defined in ``module`` (or one of its own sub-modules)."""
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Plugin) and obj is not Plugin
             and obj.__module__.startswith(module.__name__)]
    if len(found) != 1:
        raise ImportError(f"{module.__name__} must define exactly one Plugin class, found "
                          f"{[c.__name__ for c in found]}")
    return found[0]


def builtin_plugins() -> dict[str, type[Plugin]]:
    """Every plugin package inside ``daz.plugins``, by plugin name."""
    out: dict[str, type[Plugin]] = {}
    for info in pkgutil.iter_modules(daz.plugins.__path__):
        if not info.ispkg:
            continue  # base.py, manager.py, this file: the framework, not plugins
        cls = plugin_class_in(importlib.import_module(f"daz.plugins.{info.name}"))
        out[cls.name] = cls
    return out


def _load_entry_point(entry: EntryPoint) -> type[Plugin]:
    loaded = entry.load()
    if isinstance(loaded, ModuleType):
        loaded = plugin_class_in(loaded)
    if not (inspect.isclass(loaded) and issubclass(loaded, Plugin)):
        raise TypeError(f"{entry.value} is not a daz Plugin class")
    if not loaded.name:
        raise TypeError(f"{entry.value} has no name")
    return loaded


def installed_plugins() -> dict[str, type[Plugin]]:
    """Plugins that other distributions register under the ``daz.plugins`` entry point group."""
    out: dict[str, type[Plugin]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = _load_entry_point(entry)
        except Exception as exc:
            log.error("plugin %r (entry point %s, from %s) cannot be loaded and is left out: "
                      "%s: %s", entry.name, entry.value, _distribution_of(entry),
                      type(exc).__name__, exc)
            continue
        if cls.name in out:
            log.error("two installed plugins are named %r (%s and %s); the second is left out",
                      cls.name, out[cls.name].__module__, cls.__module__)
            continue
        out[cls.name] = cls
    return out


def _distribution_of(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def available_plugins() -> dict[str, type[Plugin]]:
    """Built-in and installed plugins, in start order."""
    found = builtin_plugins()
    for name, cls in installed_plugins().items():
        if name in found:
            log.error("installed plugin %r (%s) has the name of a built-in plugin and is left "
                      "out", name, cls.__module__)
            continue
        found[name] = cls
    return {name: found[name] for name in start_order(found)}


def start_order(classes: dict[str, type[Plugin]]) -> list[str]:
    """Names in an order where every plugin comes after those it declares in ``after``."""
    waits_for = {name: {dep for dep in cls.after if dep in classes and dep != name}
                 for name, cls in classes.items()}
    followers: dict[str, list[str]] = {name: [] for name in classes}
    for name, deps in waits_for.items():
        for dep in deps:
            followers[dep].append(name)
    ready = [name for name, deps in waits_for.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for follower in followers[name]:
            waits_for[follower].discard(name)
            if not waits_for[follower]:
                heapq.heappush(ready, follower)
    if len(order) != len(classes):
        stuck = sorted(set(classes) - set(order))
        raise PluginOrderError("these plugins wait for each other in their 'after' "
                               f"declarations, so none can start first: {', '.join(stuck)}")
    return order
