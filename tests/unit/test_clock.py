"""FakeClock: sleeping on it waits for virtual time, which only the test moves."""
import asyncio

import pytest

from daz.clock import Clock, FakeClock


async def test_run_wakes_every_sleeper_in_order_as_often_as_real_time_would():
    clock = FakeClock()
    ticks: list[tuple[str, float]] = []

    async def every(name: str, seconds: float) -> None:
        while True:
            await clock.sleep(seconds)
            ticks.append((name, round(clock.monotonic() - 1000, 3)))

    tasks = [asyncio.create_task(every("a", 0.3)), asyncio.create_task(every("b", 0.5))]
    await clock.run(1.0)
    assert ticks == [("a", 0.3), ("b", 0.5), ("a", 0.6), ("a", 0.9), ("b", 1.0)]
    assert clock.monotonic() == 1001.0 and clock.time() == 1_800_000_001.0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert clock.sleeping() == 0


async def test_decimal_steps_add_up_exactly():
    clock = FakeClock()
    woke = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(10)
        woke.set()

    task = asyncio.create_task(sleeper())
    await clock.run(9.9)
    assert not woke.is_set() and clock.next_wake() == pytest.approx(0.1)
    await clock.run(0.1)
    assert woke.is_set()
    await task


async def test_advance_moves_the_time_and_wakes_nothing_until_run():
    clock = FakeClock()
    woke = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(60)
        woke.set()

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    clock.advance(3600)
    await asyncio.sleep(0.01)
    assert not woke.is_set() and clock.next_wake() == -3540
    await clock.run(0)  # what became due runs now
    assert woke.is_set()
    await task


async def test_wait_returns_when_the_event_is_set_or_the_virtual_time_is_up():
    clock = FakeClock()
    event = asyncio.Event()
    waiting = asyncio.create_task(clock.wait(event, 30))
    await clock.run(29)
    assert not waiting.done()
    event.set()
    assert await waiting is True
    timing_out = asyncio.create_task(clock.wait(asyncio.Event(), 30))
    await clock.run(30)
    assert await timing_out is False
    assert clock.sleeping() == 0  # nothing left behind by either


async def test_a_woken_task_that_never_sleeps_again_or_ends_is_named():
    clock = FakeClock()

    async def stuck() -> None:
        await clock.sleep(1)
        await asyncio.Event().wait()  # woke up and hangs elsewhere

    task = asyncio.create_task(stuck(), name="stuck-timer")
    with pytest.raises(TimeoutError, match="stuck-timer"):
        await clock.run(1, settle_timeout=0.2)
    task.cancel()


async def test_the_real_clock_sleeps_and_waits_in_real_time():
    clock = Clock()
    event = asyncio.Event()
    assert await clock.wait(event, 0.01) is False
    event.set()
    assert await clock.wait(event, 10) is True
    started = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() - started >= 0.009
