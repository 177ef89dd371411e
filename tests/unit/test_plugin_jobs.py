"""Periodic jobs (``@every``) run by the plugin manager: failures, overlap, config, stop."""
import asyncio
import logging

import asyncpg
import pytest

from daz.bus import Bus
from daz.clock import Clock
from daz.config import ConfigError, load_config
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from daz.plugins.base import Plugin, PluginConfig, every
from daz.plugins.manager import PluginManager
from tests.e2e.harness import wait_until
from tests.fakes.no_database import database_that_never_answers


def manager(sections=None) -> PluginManager:
    config = load_config(None, env={}, overrides={"channel": "c"})
    config.plugins.update(sections or {})
    metrics = Metrics()
    return PluginManager(config=config, bus=Bus(metrics=metrics), rooms=Rooms(),
                         db=database_that_never_answers(), http=None, clock=Clock(),
                         metrics=metrics, data_dir=None)


async def started(classes, sections=None) -> PluginManager:
    m = manager(sections)
    await m.start(m.select(classes))
    return m


class Flaky(Plugin):
    name = "flaky"

    async def setup(self):
        self.runs = 0

    @every(seconds=0.01)
    async def tick(self):
        self.runs += 1
        if self.runs % 2:
            raise RuntimeError(f"bug in run {self.runs}")


async def test_a_job_that_raises_keeps_being_scheduled_and_every_failure_is_counted(caplog):
    m = await started({"flaky": Flaky})
    flaky = m.get("flaky")
    with caplog.at_level(logging.ERROR, logger="daz.plugins.manager"):
        await wait_until(lambda: flaky.runs >= 6, 5, "six runs")
    await m.stop()
    failures = (flaky.runs + 1) // 2
    assert m.status()["flaky"]["errors"] == failures
    assert m.metrics.handler_error_counts["flaky"] == failures
    logged = [r for r in caplog.records if "job tick failed" in r.getMessage()]
    assert len(logged) >= 3 and all(r.exc_info for r in logged)  # with the traceback


class DatabaseAway(Plugin):
    name = "away"

    async def setup(self):
        self.runs = 0

    @every(seconds=0.01)
    async def tick(self):
        self.runs += 1
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")


async def test_a_job_failing_on_a_temporary_database_error_is_a_warning_not_an_error(caplog):
    m = await started({"away": DatabaseAway})
    with caplog.at_level(logging.WARNING, logger="daz.plugins.manager"):
        await wait_until(lambda: m.get("away").runs >= 3, 5, "three runs")
    await m.stop()
    assert m.status()["away"]["errors"] == 0
    lines = [r for r in caplog.records if r.name == "daz.plugins.manager"]
    assert lines and all(r.levelno == logging.WARNING and not r.exc_info for r in lines)
    assert "the database did not answer" in lines[0].getMessage()


class Slow(Plugin):
    name = "slow"

    async def setup(self):
        self.running = 0
        self.most_at_once = 0
        self.runs = 0

    @every(seconds=0.001)
    async def tick(self):
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.03)  # thirty intervals long
        self.running -= 1
        self.runs += 1


async def test_a_job_never_overlaps_itself():
    m = await started({"slow": Slow})
    slow = m.get("slow")
    await wait_until(lambda: slow.runs >= 3, 5, "three runs")
    await m.stop()
    assert slow.most_at_once == 1


class Stuck(Plugin):
    name = "stuck"

    async def setup(self):
        self.entered = asyncio.Event()
        self.cancelled = False
        self.torn_down = False

    @every(seconds=0.01)
    async def tick(self):
        self.entered.set()
        try:
            await asyncio.Event().wait()  # never set: stop must cancel it
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def teardown(self):
        self.torn_down = True


async def test_stop_cancels_a_job_in_the_middle_of_a_run_and_tears_down():
    m = await started({"stuck": Stuck, "flaky": Flaky})
    stuck = m.get("stuck")
    await asyncio.wait_for(stuck.entered.wait(), 5)
    jobs = {**m.jobs("stuck"), **{"flaky." + k: t for k, t in m.jobs("flaky").items()}}
    await asyncio.wait_for(m.stop(), 5)
    assert stuck.cancelled and stuck.torn_down
    assert all(task.done() for task in jobs.values())
    runs = m.get("flaky").runs
    await asyncio.sleep(0.05)
    assert m.get("flaky").runs == runs  # nothing runs after stop
    assert m.status()["stuck"]["errors"] == 0  # a cancellation is not a failure


class OptionalConfig(PluginConfig):
    sweeping: bool = False
    sweep_seconds: float = 0.01
    first_sweep_factor: float = 0.0


class Optional(Plugin):
    name = "optional"
    Config = OptionalConfig

    async def setup(self):
        self.sweeps = 0

    @every(config="sweep_seconds", enabled_by="sweeping",
           initial_delay=lambda config: config.sweep_seconds * config.first_sweep_factor)
    async def sweep(self):
        self.sweeps += 1


async def test_a_job_runs_only_when_its_enabled_by_key_is_true():
    off = await started({"optional": Optional})
    assert off.jobs("optional") == {}
    await asyncio.sleep(0.05)
    assert off.get("optional").sweeps == 0
    await off.stop()
    on = await started({"optional": Optional},
                       {"optional": {"sweeping": True, "sweep_seconds": 3600}})
    # The computed first delay is 0: the first run comes at once, not an hour later.
    await wait_until(lambda: on.get("optional").sweeps == 1, 5, "the first sweep")
    await on.stop()


async def test_a_bad_enabled_by_key_or_computed_delay_stops_start_up():
    class Misnamed(Plugin):
        name = "misnamed"

        @every(seconds=1, enabled_by="switched_on")
        async def tick(self):
            pass

    with pytest.raises(ConfigError, match=r"plugins\.misnamed\.switched_on: job 'tick'"):
        await started({"misnamed": Misnamed})
    with pytest.raises(ConfigError, match=r"plugins\.optional: job 'sweep' computed a first"
                                          r" delay of -0\.01"):
        await started({"optional": Optional},
                      {"optional": {"sweeping": True, "first_sweep_factor": -1}})
