"""Retried operations are dispatched by each plugin's ``retry_operations`` mapping: an operation
a plugin does not know is dead-lettered on its first run, a known one runs and completes."""
from typing import ClassVar

import pytest

from daz.plugins.base import Plugin
from daz.plugins.eventfilter import EventFilter
from daz.plugins.gallery import Gallery
from daz.plugins.greeter import Greeter
from daz.plugins.ollama import Ollama
from daz.plugins.retry import Retry
from daz.plugins.tell import Tell
from tests.plugin_kit import Kit

MANUAL = {"retry": {"first_poll_seconds": 3600, "initial_delay_seconds": 0, "jitter": 0}}
# Ollama is off by default; its server is never contacted by these tests.
SECTIONS = {"ollama": {"enabled": True, "ollama_url": "http://127.0.0.1:9"}}
PLUGINS = {"tell": Tell, "greeter": Greeter, "ollama": Ollama, "gallery": Gallery,
           "eventfilter": EventFilter}


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_mapped_operation_names_a_method_of_the_plugin(name):
    cls = PLUGINS[name]
    assert cls.retry_operations and cls.runs_retried_operations()
    for method in cls.retry_operations.values():
        assert callable(getattr(cls, method, None)), method


@pytest.mark.parametrize("name", sorted(PLUGINS))
async def test_an_unknown_operation_is_dead_lettered_at_once(database, name):
    k = await Kit.start({"retry": Retry, name: PLUGINS[name]}, db=database,
                        sections={**MANUAL, name: SECTIONS.get(name, {})})
    try:
        assert await k.plugin(name).defer_retry("frobnicate", {"x": 1}, key=f"{name}-f",
                                                max_retries=5)
        await k.plugin("retry").poll()
        row = await database.fetchrow("SELECT status, retry_count, last_error"
                                      " FROM daz_retry_queue WHERE correlation_id = $1",
                                      f"{name}-f")
        assert row["status"] == "failed" and row["retry_count"] == 0
        assert "frobnicate" in row["last_error"]
    finally:
        await k.stop()


@pytest.mark.parametrize("name,operation,payload", [
    ("tell", "confirm_delivery", {}),  # nothing sent, nothing released: a no-op that succeeds
    ("eventfilter", "save_enabled", {"command": "no-such-command"}),  # gone: nothing to save
])
async def test_a_known_operation_runs_and_completes(database, name, operation, payload):
    k = await Kit.start({"retry": Retry, name: PLUGINS[name]}, db=database,
                        sections={**MANUAL, name: SECTIONS.get(name, {})})
    try:
        await k.plugin(name).defer_retry(operation, payload, key=f"{name}-k")
        assert await k.plugin("retry").poll() == 1
        assert await database.fetchval("SELECT status FROM daz_retry_queue"
                                       " WHERE correlation_id = $1", f"{name}-k") == "completed"
    finally:
        await k.stop()


async def test_the_base_dispatches_by_mapping_and_refuses_the_rest():
    class Mapped(Plugin):
        name = "mapped"
        retry_operations: ClassVar[dict[str, str]] = {"save": "_save"}

        def __init__(self):
            self.saved = []

        async def _save(self, payload):
            self.saved.append(payload)

    plugin = Mapped()
    await plugin.retry_operation("save", {"a": 1})
    assert plugin.saved == [{"a": 1}]
    with pytest.raises(NotImplementedError, match="mapped has no retried operation 'other'"):
        await plugin.retry_operation("other", {})
    assert not Plugin.runs_retried_operations()
