"""RoomHolder: joins the rooms this instance holds a lease for, and only those.

Every ``renew_seconds`` one tick, on the holder's own database connection:

1. announce this instance (its row lapses with its leases when it dies);
2. renew our leases; a room whose lease another instance has taken is left at once;
3. look at the live instances and leases, work out each instance's fair share
   (``leases.fair_shares``: even by count, under each ``core.max_rooms``), then take free rooms
   up to our share, or leave the rooms above it so an instance below its share takes them.

A room is started only after its lease is ours and its lease is given up only after the room
has left the channel, so two instances are never in one room together. When the database
cannot be reached our leases lapse for the others after ``lease_seconds``; before that we leave
every room ourselves (``fenced``), unless no other instance was alive at our last look: nobody
can take a room without the database, and a bot alone on its database keeps its rooms through
an outage, as it always did. docs/scale-out.md has the reasoning and the failure cases.

Each instance also writes a report of itself into its ``daz_instances`` row (what its
``GET /status`` says: rooms, plugins, database, queues), every ``report_seconds``, with the
heartbeat, so ``daz status`` can show every instance from the database alone.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from daz.scaleout.leases import LeaseStore, Snapshot, Wanted, fair_shares, lease_key

log = logging.getLogger(__name__)


class RoomHolder:
    def __init__(self, *, dsn: str, room_configs: list, rooms: Any,
                 make_room: Callable[[Any], Any], max_rooms: int = 0,
                 renew_seconds: float = 1.0, lease_seconds: float = 5.0,
                 web_url: Callable[[], str] = lambda: "", metrics: Any = None,
                 reporter: Callable[[], Awaitable[dict]] | None = None) -> None:
        self.instance_id = uuid.uuid4()
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.rooms = rooms
        self.make_room = make_room
        self.max_rooms = max_rooms
        self.renew_seconds = renew_seconds
        self.lease_seconds = lease_seconds
        self.web_url = web_url
        self.metrics = metrics
        self.store = LeaseStore(dsn, self.instance_id, self.name, ttl=lease_seconds,
                                timeout=max(0.5, lease_seconds / 3))
        self.wanted: dict[str, Wanted] = {}
        self.configs: dict[str, Any] = {}
        for config in room_configs:
            key = lease_key(config.server_url, config.channel, config.username)
            self.wanted[key] = Wanted(key, config.id, config.channel)
            self.configs[key] = config
        self.held: dict[str, Any] = {}  # lease key → the running Room
        self.leaving: set[str] = set()  # rooms being left; their leases are kept until done
        self.snapshot = Snapshot()
        self.share = 0
        self.solo = True
        self.valid_until = 0.0  # monotonic: our leases are surely ours until then
        self.last_error: str | None = None
        self.last_tick = 0.0
        self.reporter = reporter
        # One report per 50 rooms a second at most: a 1,000-room instance writes every 20 s.
        self.report_seconds = max(2.0, len(self.wanted) / 50)
        self._report: str | None = None  # built, not yet written with a heartbeat
        self._report_task: asyncio.Task | None = None
        self._task: asyncio.Task | None = None
        self._side: set[asyncio.Task] = set()
        self._stopping = False

    # ------------------------------------------------------------------ start / stop

    async def start(self) -> None:
        """The first tick runs here, so the rooms we can take are started when this returns."""
        await self.tick()
        self._task = asyncio.create_task(self._run(), name="scaleout:leases")
        if self.reporter is not None:
            self._report_task = asyncio.create_task(self._report_loop(), name="scaleout:report")

    async def stop(self) -> None:
        """Leave every room, then give up the leases, so others take over at once."""
        self._stopping = True
        for task in (self._task, self._report_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._side, return_exceptions=True)
        await asyncio.gather(*(self._stop_room(key) for key in list(self.held)),
                             return_exceptions=True)
        try:
            await self.store.leave()
        except Exception as exc:  # they lapse on their own after lease_seconds
            log.warning("leases: could not give up the leases at shutdown: %s", exc)
        await self.store.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            await self.tick()

    async def _report_loop(self) -> None:
        assert self.reporter is not None
        while True:
            try:
                report = await asyncio.wait_for(self.reporter(), self.report_seconds * 2)
                self._report = json.dumps(report, default=str)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the heartbeat goes on; the row keeps its older report
                log.warning("leases: could not build this instance's report: %s", exc)
            await asyncio.sleep(self.report_seconds)

    # ------------------------------------------------------------------ one tick

    async def tick(self) -> None:
        sent = time.monotonic()
        report, self._report = self._report, None
        try:
            try:
                await self.store.announce(self.max_rooms, self.web_url(), report)
            except BaseException:
                if self._report is None:  # not written: the next heartbeat takes it
                    self._report = report
                raise
            kept = await self.store.renew(list(self.held))
            self.valid_until = sent + self.lease_seconds * 0.8
            for key in set(self.held) - kept:
                log.warning("leases: room %s was taken over by another instance; leaving it",
                            self.wanted[key].room_id)
                self._spawn(self._stop_room(key))
            self.snapshot = await self.store.snapshot()
            self.solo = set(self.snapshot.instances) <= {str(self.instance_id)}
            await self._balance()
            self.last_error = None
            self.last_tick = time.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("leases: tick failed: %s", self.last_error)
            self._fence_if_expired()
        self._publish_metrics()

    def _fence_if_expired(self) -> None:
        if not self.held or self.solo or time.monotonic() < self.valid_until:
            return
        log.error("leases: could not renew for %.0fs while other instances were alive:"
                  " leaving %d room(s) so no room is joined twice", self.lease_seconds,
                  len(self.held))
        for key in list(self.held):
            self._spawn(self._stop_room(key))

    async def _balance(self) -> None:
        me = str(self.instance_id)
        caps = {i.instance_id: i.max_rooms for i in self.snapshot.instances.values()}
        caps[me] = self.max_rooms
        self.share = fair_shares(caps, len(self.wanted)).get(me, 0)
        holding = len(self.held)
        if holding < self.share:
            free = [w for key, w in self.wanted.items()
                    if key not in self.snapshot.holders and key not in self.held]
            random.shuffle(free)  # instances starting together pick different rooms first
            taken = await self.store.acquire(free[: self.share - holding])
            for key in taken:
                self._start_room(key)
        elif holding > self.share and self._someone_below_share(caps):
            extra = [key for key in self.held if key not in self.leaving]
            for key in extra[: holding - self.share]:
                log.info("leases: handing room %s over (holding %d, share %d)",
                         self.wanted[key].room_id, holding, self.share)
                self._spawn(self._hand_over(key))

    def _someone_below_share(self, caps: dict[str, int]) -> bool:
        shares = fair_shares(caps, len(self.wanted))
        return any(i.holds < shares.get(i.instance_id, 0)
                   for i in self.snapshot.instances.values()
                   if i.instance_id != str(self.instance_id))

    # ------------------------------------------------------------------ rooms

    def _start_room(self, key: str) -> None:
        if key in self.held or self._stopping:
            return
        room = self.make_room(self.configs[key])
        self.rooms.add(room)
        self.held[key] = room
        self._mark_held(room.id, True)
        log.info("leases: holding room %s", room.id)
        self._spawn(room.start())

    async def _stop_room(self, key: str) -> None:
        room = self.held.get(key)
        if room is None or key in self.leaving:
            return
        self.leaving.add(key)
        try:
            await room.stop()
        finally:
            self.rooms.remove(room.id)
            self.held.pop(key, None)
            self._mark_held(room.id, False)
            self.leaving.discard(key)

    async def _hand_over(self, key: str) -> None:
        await self._stop_room(key)
        try:
            await self.store.release([key])
        except Exception as exc:  # the next renew gives it up, or it lapses
            log.warning("leases: could not release room %s at once: %s", key, exc)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    # ------------------------------------------------------------------ reporting

    def status(self) -> dict:
        rooms = {}
        for key, wanted in self.wanted.items():
            holder = self.snapshot.holders.get(key)
            name = self.name if key in self.held else holder[1] if holder else None
            rooms[wanted.room_id] = {"channel": wanted.channel, "holder": name,
                                     "here": key in self.held}
        return {"instance": self.name, "instance_id": str(self.instance_id),
                "holding": len(self.held), "share": self.share,
                "max_rooms": self.max_rooms, "solo": self.solo,
                "instances": {i.name: {"holds": i.holds, "max_rooms": i.max_rooms,
                                       "web_url": i.web_url}
                              for i in self.snapshot.instances.values()},
                "rooms": rooms, "last_error": self.last_error}

    def elsewhere(self, channel: str) -> tuple[str, str] | None:
        """(instance name, its web address) of the instance holding ``channel``, when that is
        another instance; the pages send visitors there."""
        for key, wanted in self.wanted.items():
            if wanted.channel.lower() != channel.lower() or key in self.held:
                continue
            holder = self.snapshot.holders.get(key)
            if holder is not None and holder[0] != str(self.instance_id):  # not a stale look
                found = self.snapshot.instances.get(holder[0])
                return holder[1], found.web_url if found else ""
        return None

    def _publish_metrics(self) -> None:
        if self.metrics is None:
            return
        self.metrics.rooms_unheld.set(
            sum(1 for key in self.wanted if key not in self.snapshot.holders
                and key not in self.held))
        self.metrics.lease_instances.set(len(self.snapshot.instances))

    def _mark_held(self, room_id: str, held: bool) -> None:
        if self.metrics is None:
            return
        if held:
            self.metrics.room_held.labels(room=room_id, instance=self.name).set(1)
        else:
            try:
                self.metrics.room_held.remove(room_id, self.name)
            except KeyError:
                pass
