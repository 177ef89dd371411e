"""The retry plugin without a database: validation, holding, error classification."""
import asyncpg
import pytest

from daz.journal import read_records
from daz.plugins.base import Plugin
from daz.plugins.retry import Retry, transient
from tests.plugin_kit import Kit


class Writer(Plugin):
    name = "writer"

    async def retry_operation(self, operation, payload):
        pass


async def test_without_a_database_operations_are_held_not_lost(tmp_path):
    k = await Kit.start({"retry": Retry, "writer": Writer},
                        sections={"retry": {"first_poll_seconds": 3600, "max_pending": 2}},
                        data_dir=tmp_path)
    writer = k.plugin("writer")
    assert await writer.defer_retry("save", {"n": 1}, key="a")
    assert await writer.defer_retry("save", {"n": 2}, key="b")
    assert await writer.defer_retry("save", {"n": 3}, key="c")
    retry = k.plugin("retry")
    assert [i["key"] for i in retry.pending] == ["b", "c"] and retry.lost == 1
    assert k.metrics.registry.get_sample_value(
        "daz_retry_operations_total", {"plugin": "writer", "outcome": "lost"}) == 1
    assert k.metrics.registry.get_sample_value("daz_retry_held_in_memory") == 2
    await k.stop()
    assert len(read_records(tmp_path / "journal" / "retry-pending.journal")) == 2


async def test_enqueue_refuses_what_can_never_work():
    k = await Kit.start({"retry": Retry}, sections={"retry": {"first_poll_seconds": 3600}})
    with pytest.raises(ValueError):
        await k.bus.request("retry.enqueue", {"operation": "x"})
    with pytest.raises(TypeError):  # not JSON: told to the caller now, not found out later
        await k.bus.request("retry.enqueue", {"plugin": "p", "operation": "x",
                                              "payload": {"when": object()}})
    assert len(k.plugin("retry").pending) == 0
    await k.stop()


def test_transient_errors():
    assert transient(ConnectionRefusedError())
    assert transient(TimeoutError())
    assert transient(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    assert transient(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert not transient(asyncpg.exceptions.UniqueViolationError("dup"))
    assert not transient(asyncpg.exceptions.StringDataRightTruncationError("too long"))
