"""The bus: order per room, isolation of slow handlers, priorities, drops, request/reply."""
import asyncio

import pytest

from daz.bus import Bus, DuplicateResponder, NoResponder
from daz.clock import FakeClock
from daz.events import PluginEvent
from tests.e2e.harness import wait_until


def ev(n, room="r1", name="t.x"):
    return PluginEvent(name=name, room_id=room, data={"n": n})


async def test_events_of_one_room_arrive_in_publish_order_across_topics():
    bus = Bus()
    seen = []

    async def handler(e):
        if e.data["n"] % 7 == 0:
            await asyncio.sleep(0)  # a handler that yields must not reorder anything
        seen.append(e.data["n"])

    bus.subscribe("t.*", handler, owner="p")
    for n in range(500):
        await bus.publish(ev(n, name="t.a" if n % 2 else "t.b"))
    assert await bus.drain(5)
    assert seen == list(range(500))
    await bus.close()


async def test_pattern_and_exact_subscribers_both_receive():
    bus = Bus()
    got = {"exact": 0, "pattern": 0}

    async def exact(e):
        got["exact"] += 1

    async def pattern(e):
        got["pattern"] += 1

    bus.subscribe("cytube.event.chatMsg", exact, owner="a")
    bus.subscribe("cytube.*", pattern, owner="b")
    await bus.publish(PluginEvent(name="cytube.event.chatMsg"))
    await bus.publish(PluginEvent(name="cytube.event.addUser"))
    await bus.drain(2)
    assert got == {"exact": 1, "pattern": 2}
    await bus.close()


async def test_a_hung_handler_does_not_delay_other_plugins_or_other_rooms():
    clock = FakeClock()
    bus = Bus(slow_after=0.2, clock=clock)
    hang = asyncio.Event()
    fast_seen = []
    slow_seen = []

    async def slow(e):
        slow_seen.append(e.room_id)
        if e.room_id == "r1":
            await hang.wait()

    async def fast(e):
        fast_seen.append((e.room_id, e.data["n"]))

    bus.subscribe("t.*", slow, owner="slowplugin")
    bus.subscribe("t.*", fast, owner="fastplugin")
    for n in range(3):
        await bus.publish(ev(n, room="r1"))
        await bus.publish(ev(n, room="r2"))
    await wait_until(lambda: len(fast_seen) == 6, what="the other plugin seeing everything")
    await wait_until(lambda: slow_seen.count("r2") == 3,
                     what="the slow plugin still serving the other room")
    await clock.run(0.15)
    assert not bus.slow_handlers() and not bus.stats.slow  # not slow yet: 0.15 s < 0.2 s
    await clock.run(0.45)
    assert bus.slow_handlers() and bus.slow_handlers()[0]["plugin"] == "slowplugin"
    assert bus.stats.slow["slowplugin"] == 1
    hang.set()
    await bus.drain(2)
    await bus.close()


async def test_handler_exceeding_its_timeout_is_cancelled_counted_and_the_lane_moves_on():
    clock = FakeClock()
    bus = Bus(slow_after=0.1, clock=clock)
    done = []

    async def handler(e):
        if e.data["n"] == 0:
            await asyncio.Event().wait()  # hangs for good
        done.append(e.data["n"])

    bus.subscribe("t.*", handler, owner="p", timeout=0.3)
    await bus.publish(ev(0))
    await bus.publish(ev(1))
    await clock.run(0.25)
    assert done == [] and bus.stats.timeouts["p"] == 0  # within its 0.3 s
    await clock.run(0.2)
    assert await bus.drain(2)
    assert done == [1]
    assert bus.stats.timeouts["p"] == 1
    await bus.close()


def lane_task(bus, owner):
    (sub,) = [s for s in bus.subscriptions() if s.owner == owner]
    (lane,) = sub.lanes.values()
    return lane.task


async def test_a_cancel_from_outside_ends_the_lane_and_is_no_timeout():
    # Only the watchdog's own cancel is a timeout. A lane that took any cancel for one would
    # carry on after a stop or a test's teardown cancelled it, and the loop would never finish.
    clock = FakeClock()
    bus = Bus(clock=clock)
    entered = asyncio.Event()

    async def hangs(e):
        entered.set()
        await asyncio.Event().wait()

    bus.subscribe("t.*", hangs, owner="p", timeout=0.3)
    await bus.publish(ev(0))
    await entered.wait()
    task = lane_task(bus, "p")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled()
    assert bus.stats.timeouts["p"] == 0 and bus.stats.errors["p"] == 0
    await bus.close()


async def test_a_cancel_from_outside_during_a_timeout_still_ends_the_lane():
    clock = FakeClock()
    bus = Bus(slow_after=0.1, clock=clock)
    entered = asyncio.Event()

    async def hangs(e):
        entered.set()
        await asyncio.Event().wait()

    bus.subscribe("t.*", hangs, owner="p", timeout=0.3)
    await bus.publish(ev(0))
    await entered.wait()
    task = lane_task(bus, "p")
    (lane,) = bus.subscriptions()[0].lanes.values()
    clock.advance(0.5)
    bus.check_handlers()  # the watchdog cancels the handler for its timeout ...
    assert lane.timed_out
    task.cancel()  # ... and a stop cancels the lane before the handler has seen the first
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled()
    await bus.close()


async def test_a_handler_that_swallows_the_timeout_cancel_leaves_the_lane_sound():
    clock = FakeClock()
    bus = Bus(slow_after=0.1, clock=clock)
    done = []

    async def stubborn(e):
        if e.data["n"] == 0:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # a plugin bug: the cancel is swallowed
        done.append(e.data["n"])

    bus.subscribe("t.*", stubborn, owner="p", timeout=0.3)
    await bus.publish(ev(0))
    await clock.run(0.5)
    await bus.publish(ev(1))
    assert await bus.drain(2)
    assert done == [0, 1]  # the lane went on
    task = lane_task(bus, "p")
    assert task.cancelling() == 0  # the watchdog's cancel was taken back
    task.cancel()  # and a later stop still ends the lane
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    await bus.close()


async def test_exception_in_one_handler_is_counted_and_delivery_continues():
    bus = Bus()
    seen = []

    async def flaky(e):
        if e.data["n"] == 1:
            raise RuntimeError("boom")
        seen.append(e.data["n"])

    sub = bus.subscribe("t.*", flaky, owner="flaky")
    for n in range(3):
        await bus.publish(ev(n))
    await bus.drain(2)
    assert seen == [0, 2]
    assert sub.errors == 1 and bus.stats.errors["flaky"] == 1
    await bus.close()


async def test_higher_priority_subscribers_run_first():
    bus = Bus()
    order = []

    async def low(e):
        order.append("log")

    async def high(e):
        order.append("command")

    bus.subscribe("t.*", low, owner="sql", priority=0)
    bus.subscribe("t.*", high, owner="eventfilter", priority=100)
    await bus.publish(ev(0))
    await bus.drain(2)
    assert order == ["command", "log"]
    await bus.close()


async def test_drop_oldest_is_counted_once_per_dropped_event():
    bus = Bus()
    gate = asyncio.Event()
    seen = []

    async def handler(e):
        await gate.wait()
        seen.append(e.data["n"])

    bus.subscribe("t.*", handler, owner="lossy", max_queue=3, overflow="drop_oldest")
    for n in range(10):
        await bus.publish(ev(n))
    await asyncio.sleep(0.05)
    gate.set()
    await bus.drain(2)
    # one event was already being handled, 3 fit in the queue, the rest were dropped
    assert bus.stats.dropped["lossy"] == len(range(10)) - len(seen)
    assert seen[-3:] == [7, 8, 9]
    await bus.close()


async def test_block_overflow_applies_back_pressure_and_loses_nothing():
    bus = Bus()
    seen = []

    async def handler(e):
        await asyncio.sleep(0.001)
        seen.append(e.data["n"])

    bus.subscribe("t.*", handler, owner="persist", max_queue=5, overflow="block")
    for n in range(50):
        await bus.publish(ev(n))
    await bus.drain(5)
    assert seen == list(range(50))
    assert bus.stats.dropped["persist"] == 0
    await bus.close()


async def test_request_reply_one_responder_timeout_and_no_responder():
    bus = Bus()

    async def double(x):
        return x * 2

    async def never(x):
        await asyncio.sleep(10)

    bus.respond("math.double", double, owner="a")
    assert await bus.request("math.double", 21) == 42
    with pytest.raises(DuplicateResponder, match="a already does"):
        bus.respond("math.double", double, owner="b")
    with pytest.raises(NoResponder):
        await bus.request("nobody.home", 1)
    bus.respond("slow", never, owner="c")
    with pytest.raises(asyncio.TimeoutError):
        await bus.request("slow", 1, timeout=0.05)
    await bus.close()


async def test_kinds_and_skip_ignored_leave_events_out_before_queuing_and_keep_order():
    from daz.cytube.events import parse_event

    bus = Bus()
    seen = []

    async def handler(e):
        seen.append((type(e).__name__, getattr(e, "msg", "")))

    def chat(text, **flags):
        e = parse_event("chatMsg", {"username": "u", "msg": text, "meta": {}, "time": 1},
                        room_id="r", channel="c")
        for k, v in flags.items():
            setattr(e, k, v)
        return e

    join = parse_event("addUser", {"name": "v", "rank": 1}, room_id="r", channel="c")
    sub = bus.subscribe("*", handler, owner="p", kinds=(type(join), type(chat("x"))),
                        skip_ignored=True)
    assert await bus.publish(chat("a")) == 1
    assert await bus.publish(ev(1, room="r")) == 0  # a PluginEvent: not one of its kinds
    assert await bus.publish(chat("old", replayed=True)) == 0
    assert await bus.publish(chat("mine", own=True)) == 0
    await bus.publish(join)
    await bus.publish(chat("b"))
    assert await bus.drain(2)
    assert seen == [("ChatMessage", "a"), ("UserJoined", ""), ("ChatMessage", "b")]
    assert sub.handled == 3
    await bus.close()


async def test_publish_nowait_queues_like_publish_or_nothing_when_a_block_lane_is_full():
    bus = Bus()
    release = asyncio.Event()
    slow_seen, fast_seen = [], []

    async def slow(e):
        await release.wait()
        slow_seen.append(e.data["n"])

    async def fast(e):
        fast_seen.append(e.data["n"])

    bus.subscribe("t.*", slow, owner="slow", overflow="block", max_queue=2)
    bus.subscribe("t.*", fast, owner="fast")
    assert bus.publish_nowait(ev(0))
    (slow_lane,) = bus.subscriptions()[0].lanes.values()
    await wait_until(lambda: slow_lane.busy_since, what="the slow lane waiting in its handler")
    assert bus.publish_nowait(ev(1)) and bus.publish_nowait(ev(2))
    assert not bus.publish_nowait(ev(3))  # slow's lane is full: nothing queued anywhere
    await wait_until(lambda: len(fast_seen) >= 3)
    assert fast_seen == [0, 1, 2]
    release.set()
    await bus.publish(ev(3))
    assert await bus.drain(2)
    assert slow_seen == [0, 1, 2, 3] and fast_seen == [0, 1, 2, 3]
    await bus.close()


async def test_unsubscribe_stops_delivery_and_ends_the_lanes_while_others_go_on():
    bus = Bus()
    kept, gone = [], []

    async def keep(e):
        kept.append(e.data["n"])

    async def leave(e):
        gone.append(e.data["n"])

    bus.subscribe("t.*", keep, owner="stays")
    leaving = bus.subscribe("t.*", leave, owner="leaves")
    for n in range(3):
        await bus.publish(ev(n, room="r1"))
        await bus.publish(ev(n, room="r2"))
    assert await bus.drain(5)
    lanes = [lane.task for lane in leaving.lanes.values()]
    assert len(lanes) == 2

    bus.unsubscribe(leaving)
    assert leaving not in bus.subscriptions()
    for n in range(3, 6):
        assert await bus.publish(ev(n, room="r1")) == 1  # only the one that stayed
    assert await bus.drain(5)
    await asyncio.sleep(0)
    assert all(task.done() for task in lanes)
    assert sorted(gone) == [0, 0, 1, 1, 2, 2]
    assert kept.count(5) == 1 and len(kept) == 9
    await bus.close()
