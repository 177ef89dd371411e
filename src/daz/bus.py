"""In-process event bus.

Each subscription has one *lane* per room: a bounded queue drained by its own task. That gives
these guarantees (the Go bot's bus had none of them; docs/upgrading-from-go.md):

* events of one room reach each subscriber in publish order (across event types too, so a
  ``userlist`` is never handled after the ``addUser`` that followed it);
* a slow or hung handler only delays its own lane: other plugins and other rooms run on;
* a full lane either applies back-pressure (``overflow="block"``: the publisher waits, for
  subscribers that must not lose anything) or drops with a per-subscription counter
  (``"drop_oldest"`` / ``"drop_newest"``) that is visible in /metrics, counted once;
* subscriptions with a higher priority are enqueued and woken first, so command handling runs
  ahead of logging when both are ready;
* a subscription may name the event classes it acts on (``kinds``) and ask not to see events
  marked ``ignored`` (``skip_ignored``): what it would only discard is never queued, so its lane
  is not woken for it, and the order of what it does see is unchanged.

Request/reply is addressed to exactly one responder per topic, fails at once with
``NoResponder`` when nobody answers that topic, and with ``asyncio.TimeoutError`` after the
timeout.
"""
from __future__ import annotations

import asyncio
import collections
import fnmatch
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from daz.clock import Clock
from daz.events import Event
from daz.logs import log_context

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")


class NoResponder(LookupError):
    """Nobody answers requests on this topic."""


class DuplicateResponder(ValueError):
    pass


@dataclass
class BusStats:
    published: int = 0
    delivered: int = 0
    # subscriber -> n
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    slow: collections.Counter[str] = field(default_factory=collections.Counter)
    timeouts: collections.Counter[str] = field(default_factory=collections.Counter)


class _Lane:
    __slots__ = (
        "busy_since",
        "current",
        "key",
        "queue",
        "reported_slow",
        "space",
        "sub",
        "task",
        "timed_out",
        "waiter",
    )

    def __init__(self, sub: Subscription, key: str):
        self.sub = sub
        self.key = key
        self.queue: collections.deque[Any] = collections.deque()
        # The future the idle drain task awaits; None while it runs. Lighter than an
        # asyncio.Event, whose wait/set cost showed in profiles: every event wakes every lane.
        self.waiter: asyncio.Future[None] | None = None
        self.space = asyncio.Event()
        self.space.set()
        self.task: asyncio.Task[None] | None = None
        self.busy_since = 0.0
        self.current: Any = None
        self.reported_slow = False
        # Set by the watchdog just before it cancels the handler: only that cancel is a
        # timeout; any other (a stop, a test's teardown) ends the lane.
        self.timed_out = False


class Subscription:
    def __init__(self, bus: Bus, pattern: str, handler: Handler, *, owner: str, priority: int,
                 max_queue: int, overflow: str, timeout: float | None,
                 kinds: frozenset[type] | None = None, skip_ignored: bool = False):
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, not {overflow!r}")
        self.bus = bus
        self.pattern = pattern
        self.is_pattern = any(c in pattern for c in "*?[")
        self.handler = handler
        self.owner = owner
        self.priority = priority
        self.max_queue = max(1, max_queue)
        self.overflow = overflow
        self.timeout = timeout
        self.kinds = kinds  # exact event classes wanted; None: every class on the topic
        self.skip_ignored = skip_ignored
        self.lanes: dict[str, _Lane] = {}
        self.handled = 0
        self.errors = 0
        self.total_seconds = 0.0
        self.active = True

    def matches(self, topic: str) -> bool:
        if self.is_pattern:
            return fnmatch.fnmatchcase(topic, self.pattern)
        return topic == self.pattern

    @property
    def depth(self) -> int:
        return sum(len(lane.queue) for lane in self.lanes.values())

    def __repr__(self) -> str:
        return f"<Subscription {self.owner}:{self.pattern} p={self.priority}>"


class Bus:
    def __init__(self, *, default_max_queue: int = 10_000, slow_after: float = 5.0,
                 metrics: Any = None, clock: Clock | None = None):
        self._subs: list[Subscription] = []
        self._route_cache: dict[str, list[Subscription]] = {}
        self._responders: dict[str, tuple[str, Callable[[Any], Awaitable[Any]]]] = {}
        self.default_max_queue = default_max_queue
        self.slow_after = slow_after
        self.stats = BusStats()
        self.metrics = metrics
        # The watchdog's time (handler timeouts, slow handlers): a test's FakeClock moves it.
        self.clock = clock or Clock()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ subscribing

    def subscribe(self, pattern: str, handler: Handler, *, owner: str = "?", priority: int = 0,
                  max_queue: int | None = None, overflow: str = "drop_oldest",
                  timeout: float | None = 120.0, kinds: Any = None,
                  skip_ignored: bool = False) -> Subscription:
        """Deliver events whose topic matches ``pattern`` (exact or glob) to ``handler``.

        ``timeout`` bounds one handler call: past it the call is cancelled, logged and counted,
        and the lane moves on (a hung plugin must not hold its queue forever). ``kinds`` (event
        classes, matched exactly) narrows a pattern to the events the handler acts on;
        ``skip_ignored`` leaves out events whose ``ignored`` is true (replayed history, own
        echoes). Both filter at publish time, before anything is queued.
        """
        sub = Subscription(self, pattern, handler, owner=owner, priority=priority,
                           max_queue=max_queue or self.default_max_queue, overflow=overflow,
                           timeout=timeout, kinds=frozenset(kinds) if kinds else None,
                           skip_ignored=skip_ignored)
        self._subs.append(sub)
        self._subs.sort(key=lambda s: -s.priority)  # stable: equal priorities keep their order
        self._route_cache.clear()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        if sub in self._subs:
            self._subs.remove(sub)
        self._route_cache.clear()
        for lane in sub.lanes.values():
            if lane.task:
                lane.task.cancel()

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)

    def _route(self, topic: str) -> list[Subscription]:
        subs = self._route_cache.get(topic)
        if subs is None:
            subs = [s for s in self._subs if s.matches(topic)]
            self._route_cache[topic] = subs
        return subs

    # ------------------------------------------------------------------ publishing

    async def publish(self, event: Event) -> int:
        """Queue ``event`` for every matching subscriber; returns how many will see it.

        Awaits only when a ``block`` subscriber's lane is full (back-pressure).
        """
        if self._closed:
            return 0
        self.stats.published += 1
        subs = self._route(event.topic)
        queued, full_at = self._offer(event, subs, 0)
        while full_at >= 0:
            sub = subs[full_at]
            lane = sub.lanes[event.room_key]
            while len(lane.queue) >= sub.max_queue and sub.active and not self._closed:
                lane.space.clear()
                await lane.space.wait()
            more, full_at = self._offer(event, subs, full_at, waited=True)
            queued += more
        if self._watchdog is None and not self._closed:
            self._start_watchdog()
        return queued

    def publish_nowait(self, event: Event) -> bool:
        """``publish`` for a caller that cannot wait: when no ``block`` lane that would take the
        event is full, queue it exactly as ``publish`` does and return True; otherwise queue
        nothing and return False (the caller then awaits ``publish``)."""
        if self._closed:
            return True
        key = event.room_key
        subs = self._route(event.topic)
        for sub in subs:
            if sub.overflow == "block":
                lane = sub.lanes.get(key)
                if lane is not None and len(lane.queue) >= sub.max_queue:
                    return False
        self.stats.published += 1
        _, full_at = self._offer(event, subs, 0)
        if full_at >= 0:  # ruled out just above; nothing runs in between
            raise RuntimeError("bus: a block lane filled while publishing without waiting")
        if self._watchdog is None:
            self._start_watchdog()
        return True

    def _offer(self, event: Event, subs: list[Subscription], start: int, *,
               waited: bool = False) -> tuple[int, int]:
        """Queue ``event`` for ``subs[start:]``, in order, as the overflow policies say. Stops
        at a full ``block`` lane and returns (queued so far, its index); else (queued, -1).
        ``waited``: the caller waited for space in ``subs[start]``'s lane, which takes the event
        even if it filled again meanwhile (or its subscriber is gone), as it always did."""
        key = event.room_key
        kind = type(event)
        ignored = None  # looked up once, if a subscriber asks
        queued = 0
        for i in range(start, len(subs)):
            sub = subs[i]
            if sub.kinds is not None and kind not in sub.kinds:
                continue
            if sub.skip_ignored:
                if ignored is None:
                    ignored = bool(getattr(event, "ignored", False))
                if ignored:
                    continue
            lane = sub.lanes.get(key)
            if lane is None:
                lane = self._open_lane(sub, key)
            queue = lane.queue
            if len(queue) >= sub.max_queue and not (waited and i == start):
                if sub.overflow == "block":
                    return queued, i
                if sub.overflow == "drop_oldest":
                    queue.popleft()
                    self._dropped(sub, event.topic)
                else:
                    self._dropped(sub, event.topic)
                    continue
            queue.append(event)
            waiter = lane.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            queued += 1
        return queued, -1

    def _dropped(self, sub: Subscription, topic: str) -> None:
        self.stats.dropped[sub.owner] += 1
        if self.metrics is not None:
            self.metrics.events_dropped.labels(subscriber=sub.owner).inc()
        n = self.stats.dropped[sub.owner]
        if n == 1 or n % 1000 == 0:
            log.warning("bus: %s is not keeping up; dropped %d events so far (latest %s)",
                        sub.owner, n, topic)

    def _open_lane(self, sub: Subscription, key: str) -> _Lane:
        lane = _Lane(sub, key)
        sub.lanes[key] = lane
        lane.task = asyncio.get_running_loop().create_task(
            self._drain(lane), name=f"bus:{sub.owner}:{sub.pattern}:{key}",
            context=log_context(room=key, plugin=sub.owner))  # "": no room
        return lane

    async def _drain(self, lane: _Lane) -> None:
        sub = lane.sub
        queue = lane.queue
        perf = time.perf_counter
        monotonic = self.clock.monotonic
        loop = asyncio.get_running_loop()
        while sub.active:
            if not queue:
                lane.waiter = loop.create_future()
                try:
                    await lane.waiter
                finally:
                    lane.waiter = None
                continue
            event = queue.popleft()
            if not lane.space.is_set():
                lane.space.set()
            lane.current = event
            started = perf()
            lane.busy_since = monotonic()
            try:
                await sub.handler(event)
            except asyncio.CancelledError:
                if not self._timeout_only(lane):
                    raise
                sub.errors += 1
                self.stats.timeouts[sub.owner] += 1
                log.error("bus: %s timed out handling %s after %.1fs; skipped", sub.owner,
                          getattr(event, "topic", event), monotonic() - lane.busy_since)
                if self.metrics is not None:
                    self.metrics.count_handler_error(sub.owner)
            except Exception:
                sub.errors += 1
                self.stats.errors[sub.owner] += 1
                log.exception("bus: %s failed handling %s", sub.owner,
                              getattr(event, "topic", event))
                if self.metrics is not None:
                    self.metrics.count_handler_error(sub.owner)
            finally:
                if lane.timed_out:  # the handler swallowed the watchdog's cancel
                    self._timeout_only(lane)
                sub.total_seconds += perf() - started
                sub.handled += 1
                lane.busy_since = 0.0
                lane.current = None
                lane.reported_slow = False
                self.stats.delivered += 1

    def _timeout_only(self, lane: _Lane) -> bool:
        """Take back the watchdog's cancel of ``lane``'s handler; True when nothing else asked
        the lane's task to stop (a stop, an unsubscribe, a cancel from outside), so the lane
        goes on with the next event. False: the cancel must end the task."""
        timed_out, lane.timed_out = lane.timed_out, False
        task = asyncio.current_task()
        if timed_out and task is not None and task.uncancel() > 0:
            return False
        return timed_out and lane.sub.active and not self._closed

    # ------------------------------------------------------------------ watchdog

    def _start_watchdog(self) -> None:
        try:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch(),
                                                                    name="bus:watchdog")
        except RuntimeError:
            self._watchdog = None

    async def _watch(self) -> None:
        while not self._closed:
            await self.clock.sleep(min(1.0, self.slow_after / 2))
            self.check_handlers()

    def check_handlers(self) -> None:
        """One look of the watchdog: cancel handlers past their timeout, report slow ones."""
        now = self.clock.monotonic()
        for sub in list(self._subs):
            for lane in list(sub.lanes.values()):
                if not lane.busy_since or lane.timed_out:
                    continue
                running = now - lane.busy_since
                if sub.timeout is not None and running > sub.timeout and lane.task:
                    lane.timed_out = True
                    lane.task.cancel()
                elif running > self.slow_after and not lane.reported_slow:
                    lane.reported_slow = True
                    self.stats.slow[sub.owner] += 1
                    if self.metrics is not None:
                        self.metrics.handler_slow.labels(plugin=sub.owner).inc()
                    log.warning("bus: %s is slow: %.1fs on %s in room %r (%d queued)",
                                sub.owner, running, getattr(lane.current, "topic", "?"),
                                lane.key, len(lane.queue))

    def slow_handlers(self) -> list[dict[str, Any]]:
        """Handlers currently running longer than ``slow_after`` (for /health and tests)."""
        now = self.clock.monotonic()
        out = []
        for sub in self._subs:
            for lane in sub.lanes.values():
                if lane.busy_since and now - lane.busy_since > self.slow_after:
                    out.append({"plugin": sub.owner, "topic": sub.pattern, "room": lane.key,
                                "seconds": round(now - lane.busy_since, 1)})
        return out

    # ------------------------------------------------------------------ request / reply

    def respond(self, topic: str, handler: Callable[[Any], Awaitable[Any]], *, owner: str) -> None:
        if topic in self._responders:
            raise DuplicateResponder(
                f"{owner} wants to answer {topic!r}, but {self._responders[topic][0]} already does")
        self._responders[topic] = (owner, handler)

    def stop_responding(self, topic: str) -> None:
        self._responders.pop(topic, None)

    def has_responder(self, topic: str) -> bool:
        return topic in self._responders

    async def request(self, topic: str, payload: Any = None, *, timeout: float = 5.0) -> Any:
        entry = self._responders.get(topic)
        if entry is None:
            raise NoResponder(f"nobody answers {topic!r}")
        return await asyncio.wait_for(entry[1](payload), timeout)

    # ------------------------------------------------------------------ lifecycle

    def pending(self) -> int:
        return sum(sub.depth for sub in self._subs)

    def queued_by_owner(self) -> dict[str, int]:
        """Events waiting for each subscriber (plugin), over all its lanes."""
        out: collections.Counter[str] = collections.Counter()
        for sub in self._subs:
            out[sub.owner] += sub.depth
        return dict(out)

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every lane is empty and idle (used at shutdown and in tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(not lane.queue and not lane.busy_since
                   for sub in self._subs for lane in sub.lanes.values()):
                return True
            await asyncio.sleep(0.005)
        return False

    async def close(self) -> None:
        self._closed = True
        tasks = []
        for sub in self._subs:
            sub.active = False
            for lane in sub.lanes.values():
                lane.space.set()
                if lane.task:
                    lane.task.cancel()
                    tasks.append(lane.task)
        if self._watchdog:
            self._watchdog.cancel()
            tasks.append(self._watchdog)
        await asyncio.gather(*tasks, return_exceptions=True)
