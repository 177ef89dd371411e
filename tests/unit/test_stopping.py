"""The stop budget: every step bounded, a stuck one cut, a second signal hurries the rest."""
from __future__ import annotations

import asyncio
import logging
import time

from daz.stopping import HURRY_SECONDS, StopBudget


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_step_that_finishes_in_time_is_just_awaited():
    budget = StopBudget(2.0)
    done = []

    async def step():
        await asyncio.sleep(0.01)
        done.append(1)

    assert await budget.within(step(), "quick")
    assert done == [1] and budget.overrun == []


async def test_a_stuck_step_is_cut_at_its_share_and_named(caplog):
    budget = StopBudget(4.0)
    started = time.monotonic()
    assert not await budget.within(forever(), "plugin stuck: teardown", at_most=0.2)
    assert time.monotonic() - started < 0.6
    assert budget.overrun == ["plugin stuck: teardown"]
    assert "plugin stuck: teardown did not finish" in caplog.text


async def test_many_stuck_steps_never_outlast_the_budget():
    budget = StopBudget(1.0)
    started = time.monotonic()
    for i in range(6):
        await budget.within(forever(), f"stuck {i}", at_most=0.5)
    await budget.within(asyncio.sleep(0), "saving", keep_reserve=False)  # the reserve is left
    assert time.monotonic() - started < 1.2
    assert "saving" not in budget.overrun and len(budget.overrun) == 6


async def test_a_failing_step_is_one_log_line_not_an_exception(caplog):
    caplog.set_level(logging.WARNING)

    async def broken():
        raise ConnectionError("database gone")

    assert await StopBudget(1.0).within(broken(), "plugin x: teardown")
    assert "plugin x: teardown failed: ConnectionError: database gone" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_second_signal_ends_what_is_waiting_within_the_hurry_time():
    budget = StopBudget(30.0)
    asyncio.get_running_loop().call_later(0.1, budget.hurry)
    started = time.monotonic()
    assert not await budget.within(forever(), "draining the bus")
    assert time.monotonic() - started < HURRY_SECONDS + 0.5
    assert budget.hurried and budget.left(keep_reserve=False) <= HURRY_SECONDS
