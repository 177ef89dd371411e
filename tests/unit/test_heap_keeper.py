"""HeapKeeper: survivors of a full collection are frozen (later collections skip them), garbage
cycles among frozen objects are still reclaimed by a complete collection once the heap has
grown, and stopping gives the process its ordinary collector back."""
from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from daz.scaleout.heap import HeapKeeper


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
    keeper.baseline = keeper.heap_size() // 2  # as if the heap had doubled since
    assert keeper.due
    for _ in range(100):
        if keeper.complete_collections == 2:
            break
        await asyncio.sleep(0.02)
    assert keeper.complete_collections == 2 and alive() is None
    assert not keeper.due  # the baseline is the heap as it is now
    status = keeper.status()
    assert status["complete_collections"] == 2 and status["baseline_blocks"] > 0


async def test_stop_unfreezes_and_leaves_the_collector_as_it_was():
    keeper = HeapKeeper()
    keeper.start()
    node = Node()
    gc.collect()
    assert frozen(node) and gc.get_freeze_count() > 0
    await keeper.stop()
    assert gc.get_freeze_count() == 0 and not frozen(node)
    assert keeper._after_collection not in gc.callbacks
    other = Node()
    gc.collect()
    assert not frozen(other)  # nothing freezes survivors any more
