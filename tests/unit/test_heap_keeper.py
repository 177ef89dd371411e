"""HeapKeeper: survivors of a full collection are frozen (later collections skip them), garbage
cycles among frozen objects are still reclaimed by a complete collection once the heap has
grown beyond what the held rooms explain (rooms joining cost none), and stopping gives the
process its ordinary collector back."""
from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from daz.scaleout.heap import BACKSTOP_THRESHOLD, HeapKeeper


class Node:
    """A weak-referenceable object that can sit in a cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def frozen(obj: object) -> bool:
    """Frozen objects are tracked but in no generation's list."""
    return gc.is_tracked(obj) and not any(o is obj for g in range(3)
                                          for o in gc.get_objects(generation=g))


@pytest.fixture
async def keeper():
    keeper = HeapKeeper(check_seconds=0.05)
    keeper.start()
    try:
        yield keeper
    finally:
        await keeper.stop()


async def test_survivors_of_a_full_collection_are_frozen(keeper):
    young = [Node() for _ in range(10)]
    assert not frozen(young[0])  # allocated after the first complete collection
    gc.collect()  # a full collection: its callback freezes what it found alive
    assert all(frozen(node) for node in young)
    assert keeper.frozen_after_full >= 1


async def test_frozen_garbage_cycles_wait_for_the_complete_collection(keeper):
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect()
    assert frozen(a)
    alive = weakref.ref(a)
    del a, b
    gc.collect()
    assert alive() is not None  # frozen: ordinary collections skip the dead cycle
    keeper.complete()
    assert alive() is None  # the complete collection reclaims it
    assert keeper.complete_collections == 2 and keeper.last_complete_seconds > 0


async def test_a_complete_collection_runs_by_itself_once_the_heap_has_grown(keeper):
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect()
    alive = weakref.ref(a)
    del a, b
    assert not keeper.due
    keeper.base = keeper.heap_size() // 2  # as if the heap (no rooms held) had doubled since
    assert keeper.due
    for _ in range(100):
        if keeper.complete_collections == 2:
            break
        await asyncio.sleep(0.02)
    assert keeper.complete_collections == 2 and alive() is None
    assert not keeper.due  # the baseline is the heap as it is now
    status = keeper.status()
    assert status["complete_collections"] == 2 and status["baseline_blocks"] > 0


async def test_the_young_heap_is_collected_on_a_pace_and_its_survivors_frozen():
    threshold = gc.get_threshold()
    keeper = HeapKeeper(collect_seconds=0.05)
    keeper.start()
    try:
        # CPython's own trigger counts allocations net of frees, which a bot replacing old
        # objects with new ones hardly moves: the loop's pace collects instead.
        assert gc.get_threshold() == BACKSTOP_THRESHOLD
        a, b = Node(), Node()
        a.other, b.other = b, a
        cycle = weakref.ref(a)
        kept = Node()
        del a, b
        assert not frozen(kept)
        for _ in range(100):
            if keeper.paced_collections >= 2:
                break
            await asyncio.sleep(0.02)
        assert keeper.paced_collections >= 2
        assert cycle() is None and frozen(kept)
        status = keeper.status()
        assert status["paced_collections"] >= 2 and status["longest_paced_ms"] > 0
    finally:
        await keeper.stop()
    assert gc.get_threshold() == threshold
    assert not frozen(kept)
    paced = keeper.paced_collections
    await asyncio.sleep(0.15)
    assert keeper.paced_collections == paced  # stopped: no pace left running


async def test_stop_unfreezes_and_leaves_the_collector_as_it_was():
    threshold = gc.get_threshold()
    keeper = HeapKeeper()
    keeper.start()
    node = Node()
    gc.collect()
    assert frozen(node) and gc.get_freeze_count() > 0
    await keeper.stop()
    assert gc.get_freeze_count() == 0 and not frozen(node)
    assert gc.get_threshold() == threshold
    assert keeper._after_collection not in gc.callbacks
    other = Node()
    gc.collect()
    assert not frozen(other)  # nothing freezes survivors any more


class RoomCount:
    """What the app reports to the keeper: rooms held, and how many of them are still joining."""

    def __init__(self) -> None:
        self.held = 0
        self.joining = 0

    def __call__(self) -> tuple[int, int]:
        return self.held, self.joining


def room_state(blocks: int) -> list[Node]:
    """Objects a room keeps alive, about ``blocks`` pymalloc blocks (a Node takes two)."""
    return [Node() for _ in range(blocks // 2)]


@pytest.fixture
async def counted():
    """A keeper that only checks when told (check_seconds far away), fed a room count."""
    rooms = RoomCount()
    keeper = HeapKeeper(rooms=rooms, growth=1.2, check_seconds=3600)
    keeper.start()
    try:
        yield keeper, rooms
    finally:
        await keeper.stop()


async def test_rooms_joining_cost_no_complete_collection(counted):
    keeper, rooms = counted
    share = keeper.base // 50  # 100 rooms: the heap grows to three times its base
    rooms.held = rooms.joining = 50
    held = [room_state(share) for _ in range(50)]
    gc.collect()
    assert keeper.heap_size() > 1.5 * keeper.base  # a fixed "grown by half" would collect
    assert keeper.check() is False and keeper.per_room is None  # joining: nothing learnt yet
    rooms.joining = 0
    assert keeper.check() is False  # joined: the rooms' share is learnt, not collected
    assert keeper.per_room is not None and keeper.per_room >= share * 0.9
    rooms.held = rooms.joining = 100  # fifty more join
    held += [room_state(share) for _ in range(50)]
    gc.collect()
    assert keeper.check() is False
    rooms.joining = 0
    for _ in range(3):
        assert keeper.check() is False
    assert keeper.complete_collections == 1  # only the one at start
    status = keeper.status()
    assert status["rooms_held"] == 100 and status["rooms_joining"] == 0
    assert status["heap_blocks"] < status["complete_at_blocks"]
    assert status["per_room_blocks"] >= share * 0.9
    del held


def leak(blocks: int) -> weakref.ref:
    """Frozen garbage: cycles that survived a full collection (and so were frozen), then died."""
    cycles = []
    for _ in range(blocks // 4):
        a, b = Node(), Node()
        a.other, b.other = b, a
        cycles.append(a)
    gc.collect()
    first = weakref.ref(cycles[0])
    del cycles, a, b
    return first


async def test_a_grown_share_per_room_runs_one_complete_collection(counted):
    keeper, rooms = counted
    rooms.held = 20
    held = [room_state(keeper.base // 20) for _ in range(20)]
    gc.collect()
    keeper.check()
    learnt = keeper.per_room
    assert learnt is not None and keeper.complete_collections == 1
    leaked = leak(keeper.base)  # half the heap again, in rooms that did not change
    assert leaked() is not None and keeper.due
    assert keeper.check() is True
    assert keeper.complete_collections == 2 and leaked() is None
    assert keeper.per_room is not None and keeper.per_room < learnt * 1.2  # the live share
    assert keeper.check() is False and keeper.complete_collections == 2  # one, not a series
    del held


async def test_joining_holds_a_due_collection_back_for_at_most_max_postpone(counted):
    keeper, rooms = counted
    rooms.held = 10
    held = [room_state(keeper.base // 10) for _ in range(10)]
    keeper.check()
    leaked = leak(keeper.base)
    rooms.joining = 1  # one room that cannot join, say its server is down
    keeper.max_postpone = 0.2
    assert keeper.check() is False and keeper.check() is False
    assert keeper.postponed == 2 and leaked() is not None
    await asyncio.sleep(0.25)
    assert keeper.check() is True and leaked() is None
    assert keeper.status()["postponed_while_joining"] == 2
    del held


async def test_rooms_leaving_their_garbage_behind_is_collected(counted):
    keeper, rooms = counted
    rooms.held = 40
    held = []
    for _ in range(40):
        a, b = Node(), Node()  # a room's objects point at each other, as Room's parts do
        a.other, b.other = b, a
        held.append((a, room_state(keeper.base // 40)))
        b.other = held[-1]  # type: ignore[assignment]
    gc.collect()
    keeper.check()
    gone = weakref.ref(held[0][0])
    del held[:30], a, b
    rooms.held = 10  # thirty rooms left; their frozen cycles stay until collected
    assert gone() is not None
    assert keeper.check() is True and gone() is None
    del held


async def test_a_slow_ramp_learns_from_the_rooms_in_and_goes_on_as_others_join(counted):
    keeper, rooms = counted
    keeper.max_postpone = 0.0  # an hours-long paced ramp: past the postponement at once
    share = keeper.base // 20
    rooms.held, rooms.joining = 200, 180  # 20 in, 180 waiting for a connect
    held = [room_state(share) for _ in range(20)]
    gc.collect()
    assert keeper.check() is False and keeper.per_room is not None
    for joining in (160, 140, 120):  # the heap doubles, triples, ...: each room's share
        held += [room_state(share) for _ in range(20)]
        rooms.joining = joining
        gc.collect()
        assert keeper.check() is False
    assert keeper.complete_collections == 1
    del held


def test_a_slow_paced_collection_brings_the_next_one_sooner_and_a_quick_one_later():
    keeper = HeapKeeper(collect_seconds=1.0)
    waits = []
    for took in (0.09, 0.08, 0.05, 0.02, 0.02, 0.001, 0.001, 0.001, 0.001, 0.001):
        keeper.pace_seconds = keeper.next_pace(took)
        waits.append(keeper.pace_seconds)
    # a burst (slow walks): halved down to a tenth; then quick walks: doubled back to a second
    assert waits == [0.5, 0.25, 0.125, 0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    keeper.pace_seconds = 0.4
    assert keeper.next_pace(0.004) == 0.4  # neither slow nor quick: kept
