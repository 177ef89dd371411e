"""/health asks every plugin that declares a ``health_section`` (issue 12 item 10: the core no
longer looks for the sql plugin by name): its details appear under that key, its problems make
daz unhealthy, and a plugin whose report raises does not break /health."""
from __future__ import annotations

from typing import Any

from daz.plugins.base import Plugin
from daz.plugins.manager import available_plugins
from tests.e2e.harness import running_bot
from tests.e2e.support import plugins


class Gauge(Plugin):
    name = "gauge"
    health_section = "gauge"

    async def setup(self) -> None:
        self.problem = ""

    def health_report(self) -> tuple[dict[str, Any], list[str]]:
        return {"level": 3}, [self.problem] if self.problem else []


class Broken(Plugin):
    name = "broken"
    health_section = "broken"

    def health_report(self) -> tuple[dict[str, Any], list[str]]:
        raise RuntimeError("no report today")


async def test_plugins_report_to_health_without_the_core_naming_them(fake_server, migrated_dsn,
                                                                   tmp_path):
    classes = {**available_plugins(), "gauge": Gauge, "broken": Broken}
    async with running_bot(fake_server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=["sql", "gauge", "broken"], plugin_classes=classes) as bot:
        await bot.wait_joined()
        ok, details = await bot.health()
        assert ok, details["problems"]
        assert details["gauge"] == {"level": 3}
        assert "RuntimeError" in details["broken"]["error"]
        assert details["eventlog"]["db_ok"] is True  # the sql plugin, through the same hook
        bot.plugin("gauge").problem = "gauge: the tank is empty"
        ok, details = await bot.health()
        assert not ok and "gauge: the tank is empty" in details["problems"]
