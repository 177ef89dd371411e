"""The plugin registry: plugins are found (packages and entry points), never listed by hand."""
from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

import pytest

from daz.plugins import registry
from daz.plugins.base import Plugin
from daz.plugins.registry import PluginOrderError, available_plugins, start_order


def _plugin(name: str, after: tuple[str, ...] = ()) -> type[Plugin]:
    return type(f"P_{name}", (Plugin,), {"name": name, "after": after})


class Dice(Plugin):
    name = "dice"
    after = ("sql",)


class Impostor(Plugin):
    name = "tell"


def test_every_builtin_package_is_found_without_a_list():
    found = registry.builtin_plugins()
    assert set(found) == {"sql", "retry", "stats", "eventfilter", "usertracker", "mediatracker",
                          "analytics", "basics", "greeter", "tell", "gallery", "ollama"}
    assert all(cls.name == name for name, cls in found.items())


def test_start_order_puts_each_plugin_after_what_it_declares():
    order = list(available_plugins())
    assert order[0] == "sql"
    for name, cls in available_plugins().items():
        for dep in cls.after:
            assert order.index(dep) < order.index(name), (dep, name)


def test_ties_are_broken_by_name_and_unknown_names_in_after_are_ignored():
    classes = {n: _plugin(n) for n in ("zeta", "alpha", "mid")}
    classes["mid"] = _plugin("mid", after=("zeta", "not-installed"))
    assert start_order(classes) == ["alpha", "zeta", "mid"]


def test_a_cycle_is_an_error_that_names_the_plugins_in_it():
    classes = {"a": _plugin("a", after=("b",)), "b": _plugin("b", after=("a",)),
               "c": _plugin("c")}
    with pytest.raises(PluginOrderError, match="a, b"):
        start_order(classes)


def _entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)


def test_installed_plugins_come_from_entry_points_and_broken_ones_are_left_out(
        monkeypatch, caplog):
    entries = [_entry("dice", f"{__name__}:Dice"),
               _entry("broken", "no_such_module_anywhere:Plugin"),
               _entry("tell", f"{__name__}:Impostor")]
    monkeypatch.setattr(registry, "entry_points", lambda group: entries)
    with caplog.at_level(logging.ERROR, logger="daz.plugins.registry"):
        found = available_plugins()
    assert found["dice"] is Dice
    assert list(found).index("dice") > list(found).index("sql")
    assert found["tell"] is not Impostor  # the built-in keeps its name
    assert "broken" not in found
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "no_such_module_anywhere" in messages and "built-in" in messages


def test_an_entry_point_naming_something_else_than_a_plugin_is_left_out(monkeypatch, caplog):
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [_entry("odd", "logging:getLogger")])
    with caplog.at_level(logging.ERROR, logger="daz.plugins.registry"):
        assert "odd" not in available_plugins()
    assert "not a daz Plugin class" in caplog.text


def test_every_migration_file_in_a_plugin_package_is_migrated():
    from pathlib import Path

    from daz.db.migrate import CORE_DIR, PLUGINS_DIR, migrations

    names = {m.name for m in migrations()}
    on_disk = {f"{p.parent.parent.name}/{p.name}"
               for p in Path(PLUGINS_DIR).glob("*/migrations/*.sql")}
    on_disk |= {f"core/{p.name}" for p in Path(CORE_DIR).glob("*.sql")}
    assert on_disk and on_disk <= names, on_disk - names
    # A schema.sql left in a plugin package would be a file nobody applies.
    assert list(Path(PLUGINS_DIR).glob("*/schema.sql")) == []
