"""HeldWrites without a database server: which failures hold, order, the limit, the journal."""
import asyncio
import contextlib
import logging

import asyncpg

from daz.db.held import HeldWrites, transient
from daz.journal import Journal, read_records
from daz.metrics import Metrics


class Switch:
    """Stands in for ``Database``: ``acquire()`` fails while ``down``."""

    def __init__(self):
        self.down = False

    @contextlib.asynccontextmanager
    async def _conn(self):
        if self.down:
            raise ConnectionRefusedError("refused")
        yield object()

    def acquire(self):
        return self._conn()


def test_transient_or_not():
    assert transient(ConnectionResetError())
    assert transient(TimeoutError())
    assert transient(ConnectionError("database is not connected"))
    assert transient(asyncpg.ConnectionDoesNotExistError("gone"))
    assert transient(asyncpg.CannotConnectNowError("starting up"))
    assert transient(asyncpg.InterfaceError("pool is closing"))
    assert not transient(asyncpg.StringDataRightTruncationError("too long"))
    assert not transient(asyncpg.UniqueViolationError("dup"))
    assert not transient(ValueError("bad"))


async def test_held_in_order_bounded_and_applied_when_back(caplog, tmp_path):
    caplog.set_level(logging.INFO)
    db, done = Switch(), []

    async def apply(conn, op):
        if op.get("bad"):
            raise asyncpg.StringDataRightTruncationError("value too long")
        done.append(op["n"])

    metrics = Metrics()
    held = HeldWrites(plugin="t", db=db, apply=apply, log=logging.getLogger("daz.test"),
                      limit=5, metrics=metrics, first_delay=0.01, max_delay=0.02)
    await held.submit("r", {"n": 0})
    db.down = True
    for n in range(1, 8):
        await held.submit("r", {"n": n})
    await held.submit("r", {"n": 99, "bad": True})  # 1 and 2, then 3, pushed out by the limit
    assert held.waiting() == 5 and held.holding("r")
    assert sum("holding its writes" in r.getMessage() for r in caplog.records) == 1
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 1  # the limit, once
    db.down = False
    for _ in range(200):
        if not held.holding():
            break
        await asyncio.sleep(0.01)
    assert done == [0, 4, 5, 6, 7]  # in order; the bad one dropped, nothing after it blocked
    assert any("dropped" in r.getMessage() for r in caplog.records)
    sample = metrics.registry.get_sample_value
    assert sample("daz_held_writes_total", {"plugin": "t", "outcome": "lost"}) == 3
    assert sample("daz_held_writes_waiting", {"plugin": "t"}) == 0
    held.journal = Journal(tmp_path).stream("h")
    db.down = True
    await held.submit("r", {"n": 8})
    assert read_records(tmp_path / "h.journal") == ['{"room": "r", "op": {"n": 8}}']  # at once
    left = await held.close()
    assert left == [("r", {"n": 8})]
    await held.save([("r", {"n": 9})])  # behind what is held, for the next start
    assert held.load() == [("r", {"n": 8}), ("r", {"n": 9})]
    assert not (tmp_path / "h.journal").exists()


async def test_save_now_writes_what_is_held_without_trying_again_and_keeps_the_order(tmp_path):
    db, tried = Switch(), []

    async def apply(conn, op):
        tried.append(op["n"])

    held = HeldWrites(plugin="t", db=db, apply=apply, log=logging.getLogger("daz.test"),
                      first_delay=0.01, journal=Journal(tmp_path).stream("t-held"))
    db.down = True
    for n in range(3):
        await held.submit("r", {"n": n})
    await held.save_now()  # the database is away at stop: no attempt, straight to the file
    await held.submit("r", {"n": 3})  # an event drained after it is held and saved behind
    await held.save_now(keep=lambda op: op["n"] != 99)
    db.down = False
    assert tried == [] and not held.holding()
    await held.restore()
    assert tried == [0, 1, 2, 3]
