"""A config section that names no installed plugin is a warning that names it."""
from __future__ import annotations

import logging

from daz.bus import Bus
from daz.clock import Clock
from daz.config import load_config
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from daz.plugins.manager import PluginManager, plugin_class


def _manager(plugins: dict) -> PluginManager:
    config = load_config(None, env={}, overrides={"channel": "testchan"})
    config.plugins.update(plugins)
    metrics = Metrics()
    return PluginManager(config=config, bus=Bus(metrics=metrics), rooms=Rooms([]), db=None,
                         http=None, clock=Clock(), metrics=metrics, data_dir=None)


def test_a_section_for_no_known_plugin_is_named_in_a_warning(caplog):
    manager = _manager({"rolll": {"sides": 20}, "basics": {}})
    with caplog.at_level(logging.WARNING, logger="daz.plugins.manager"):
        manager.select({"basics": plugin_class("basics")})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "plugins.rolll" in warnings[0]
    assert "known plugins:" in warnings[0] and "basics" in warnings[0]
