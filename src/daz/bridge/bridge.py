"""KrytenBridge: every room this instance holds, on NATS, as Kryten clients expect it.

* Events: each CyTube event of a held room goes out in the Kryten envelope (wire.py); the
  bridge's bus subscription drops its oldest events rather than ever slowing a room down.
* State: the room's CyTube objects (mirror.py) in the JetStream KV buckets
  ``kryten_{channel}_{userlist,playlist,emotes,state}``, written at most every
  ``kv.FLUSH_SECONDS`` per key with the latest value, and all again after a NATS reconnect.
* Commands: ``kryten.robot.command`` in a queue group of this deployment (``queue_group``), so
  exactly one daz instance receives each request and exactly one reply goes back. The request
  names its room in ``meta.channel``; the receiver runs it when it holds that room, else
  forwards it (same reply subject) to the holder's own subject
  ``daz.bridge.<instance>.command``, else answers that no instance is in that room. A
  channel daz is not configured for gets no answer from daz.
* Lifecycle: ``kryten.lifecycle.robot.*`` and the service registry (lifecycle.py);
  ``kryten.lifecycle.group.restart`` stops daz after its delay, as it stops the old bridge
  (run daz under a supervisor that starts it again).

NATS being away never stops a room: the bridge reconnects with backoff, keeps the mirrors
current meanwhile and rewrites every KV key once it is back; /health says whether it is up.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from daz.bridge import wire
from daz.bridge.actions import CommandError, Waiters, known
from daz.bridge.commands import ActionRunner
from daz.bridge.kv import KvWriter
from daz.bridge.lifecycle import (
    DISCOVERY_POLL,
    GROUP_RESTART,
    LIFECYCLE,
    Lifecycle,
    ServiceRegistry,
)
from daz.bridge.mirror import RoomMirror
from daz.bridge.queries import state_query, system_query

if TYPE_CHECKING:  # pragma: no cover
    from daz.app import App

log = logging.getLogger(__name__)



class NotOurs(LookupError):
    """The request names a channel this daz does not run: another bridge on the same NATS
    server may, so this one stays silent (an error reply could beat that bridge's answer)."""


def _named_channel(request: dict) -> tuple[Any, Any]:
    """The channel a request names (``meta.channel``, else a top-level ``channel``; None when
    it names none) and, with it, ``meta.domain``."""
    meta = request.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    channel = meta.get("channel") or request.get("channel")
    return channel, meta.get("domain") if channel else None


def queue_group(room_configs: list) -> str:
    """Instances with the same rooms (one deployment) share one queue group, so each request
    reaches one of them; another deployment on the same NATS server has a group of its own."""
    import hashlib

    from daz.scaleout.leases import lease_key

    keys = sorted(lease_key(c.server_url, c.channel, c.username) for c in room_configs)
    return "daz-bridge-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]


class KrytenBridge:
    def __init__(self, app: App) -> None:
        self.app = app
        nats = app.config.core.nats
        self.url = nats.url
        self.domain_override = nats.domain
        self.started_at = time.time()
        self.nc: Any = None
        self.connected = False
        self.reconnects = 0
        self.last_error: str | None = None
        self.counts: collections.Counter = collections.Counter()
        self.mirrors: dict[str, RoomMirror] = {}
        self.waiters = Waiters()
        self.runner = ActionRunner(self.waiters, self.domain_for)
        self.registry = ServiceRegistry()
        self.lifecycle = Lifecycle(self.started_at)
        self.kv = KvWriter(self)
        self._subs: list[Any] = []
        self._bus_subs: list[Any] = []
        self._tasks: set[asyncio.Task] = set()
        self._connector: asyncio.Task | None = None
        self._closing = False

    # ------------------------------------------------------------------ names

    @property
    def instance_name(self) -> str:
        holder = self.app.holder
        return holder.name if holder is not None else ""

    def domain_for(self, room: Any) -> str:
        return self.domain_override or wire.domain_of(room.config.server_url)

    def _room_domain(self, config: Any) -> str:
        return self.domain_override or wire.domain_of(config.server_url)

    # ------------------------------------------------------------------ start / stop

    def attach(self) -> None:
        """Subscribe to the bus before any room starts, so the join burst is mirrored."""
        bus = self.app.bus
        self._bus_subs = [
            bus.subscribe("cytube.event.*", self._on_event, owner="bridge", max_queue=20_000,
                          overflow="drop_oldest", timeout=10.0),
            bus.subscribe("daz.room.*", self._on_room, owner="bridge", max_queue=1_000,
                          overflow="drop_oldest", timeout=10.0),
        ]

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever(), name="bridge:connect")
        self.kv.start()

    async def stop(self) -> None:
        self._closing = True
        for sub in self._bus_subs:
            self.app.bus.unsubscribe(sub)
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        await self.kv.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        nc, self.nc = self.nc, None
        if nc is not None and self.connected:
            try:
                await nc.publish(Lifecycle.subject("shutdown"),
                                 self.lifecycle.body(reason="daz stopping"))
                await nc.drain()
            except Exception as exc:
                log.warning("bridge: NATS did not drain at shutdown: %s", exc)
        elif nc is not None:
            await nc.close()
        self.connected = False

    async def _connect_forever(self) -> None:
        import nats

        delay = 0.5
        while self.nc is None:
            try:
                self.nc = await nats.connect(
                    servers=[self.url], name=f"daz {self.instance_name}",
                    allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=1,
                    connect_timeout=2, error_cb=self._nats_error,
                    disconnected_cb=self._nats_disconnected,
                    reconnected_cb=self._nats_reconnected)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("bridge: NATS at %s not reachable (%s); retrying in %.0fs",
                            self.url, self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        await self._subscribe()
        await self._nats_up("connected")

    async def _subscribe(self) -> None:
        nc = self.nc
        holder_id = self.app.holder.instance_id if self.app.holder is not None else "solo"
        self._subs = [
            await nc.subscribe(wire.COMMAND_SUBJECT, queue=queue_group(
                self.app.config.enabled_rooms), cb=self._on_request),
            await nc.subscribe(f"daz.bridge.{holder_id}.command", cb=self._on_forwarded),
            await nc.subscribe(f"{LIFECYCLE}.*.*", cb=self._on_lifecycle),
        ]

    async def _nats_up(self, how: str) -> None:
        self.connected = True
        self.last_error = None
        log.info("bridge: NATS %s (%s)", how, self.url)
        self.kv.rewrite_all()
        await self._publish(Lifecycle.subject("startup"), self.lifecycle.body(
            channels=[r.channel for r in self.app.rooms], commands_enabled=True,
            health_enabled=True))
        await self._publish(Lifecycle.subject("connected"),
                            self.lifecycle.body(target="NATS", servers=[self.url]))
        await self._publish(DISCOVERY_POLL, b"{}")  # services announce themselves to us

    async def _nats_error(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def _nats_disconnected(self) -> None:
        if self.connected and not self._closing:
            log.warning("bridge: NATS connection lost; reconnecting")
        self.connected = False

    async def _nats_reconnected(self) -> None:
        self.reconnects += 1
        await self._nats_up("reconnected")

    async def _publish(self, subject: str, data: bytes, reply: str = "") -> bool:
        nc = self.nc
        if nc is None or not self.connected:
            self.counts["not_published"] += 1
            return False
        try:
            await nc.publish(subject, data, reply=reply)
            return True
        except Exception as exc:  # buffer full while reconnecting, connection closed
            self.counts["not_published"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False

    # ------------------------------------------------------------------ events

    async def _on_event(self, event: Any) -> None:
        room_id = event.room_id
        mirror = self.mirrors.get(room_id)
        if mirror is None:
            mirror = self.mirrors[room_id] = RoomMirror()
        changed = mirror.apply(event.event_name, event.payload)
        if changed:
            self.kv.changed(room_id, changed)
        self.waiters.offer(room_id, event.event_name, event.payload)
        if wire.leave_out(event):
            self.counts["left_out"] += 1
            return
        room = self.app.rooms.get(room_id)
        if room is None:
            return
        try:
            subject = wire.event_subject(room.channel, event.event_name)
        except wire.BadToken as exc:
            self.counts["bad_subject"] += 1
            log.debug("bridge: %s", exc)
            return
        body = wire.envelope(event.event_name, event.payload, room.channel,
                             self.domain_for(room), wire.marks(event))
        if await self._publish(subject, body):
            self.counts["published"] += 1

    async def _on_room(self, event: Any) -> None:
        room = self.app.rooms.get(event.room_id)
        kind = type(event).__name__
        if kind == "RoomJoined" and room is not None:
            await self._publish(Lifecycle.subject("connected"), self.lifecycle.body(
                target="CyTube", domain=self.domain_for(room), channel=room.channel))
        elif kind == "RoomDisconnected" and not event.will_retry:
            domain = self.domain_for(room) if room is not None else ""
            await self._publish(Lifecycle.subject("disconnected"), self.lifecycle.body(
                target="CyTube", domain=domain, channel=event.channel, reason=event.reason))
            self.mirrors.pop(event.room_id, None)  # the next holder writes the KV afresh

    def held_mirrors(self) -> list[RoomMirror]:
        return [m for room_id, m in self.mirrors.items() if self.app.rooms.get(room_id)]

    # ------------------------------------------------------------------ commands

    async def _on_request(self, msg: Any) -> None:
        self._spawn(self._handle(msg, forwarded=False))

    async def _on_forwarded(self, msg: Any) -> None:
        self._spawn(self._handle(msg, forwarded=True))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Any, *, forwarded: bool) -> None:
        command = None
        try:
            request = json.loads(msg.data)
            if not isinstance(request, dict):
                raise CommandError("a request is a JSON object")
            command = request.get("command")
            if not isinstance(command, str) or not command:
                raise CommandError("the request has no 'command'")
            if request.get("service", "robot") not in ("robot", "system"):
                raise CommandError(f"daz answers service 'robot', not {request['service']!r}")
            data = await self._answer(msg, request, command, forwarded)
            if data is None:
                return  # forwarded: the holder replies
            self.counts["commands"] += 1
            reply = {"service": "robot", "command": command, "success": True, "data": data}
        except NotOurs as exc:
            log.debug("bridge: %s", exc)
            return
        except CommandError as exc:
            reply = {"service": "robot", "command": command, "success": False, "error": str(exc)}
            self.counts["command_errors"] += 1
        except ValueError as exc:
            reply = {"service": "robot", "command": command, "success": False,
                     "error": f"not a valid request: {exc}"}
            self.counts["command_errors"] += 1
        except Exception as exc:
            log.exception("bridge: command %r failed", command)
            reply = {"service": "robot", "command": command, "success": False,
                     "error": f"{type(exc).__name__}: {exc}"}
            self.counts["command_errors"] += 1
        if reply.get("success") is False:
            log.info("bridge: command %r refused: %s", command, reply["error"])
        if msg.reply:
            await self._publish(msg.reply, json.dumps(reply, default=str).encode("utf-8"))

    async def _answer(self, msg: Any, request: dict, command: str, forwarded: bool) -> Any:
        if command.startswith("system."):
            if _named_channel(request)[0]:
                # Another deployment on the same NATS answers for its own rooms: a query about a
                # channel this one is not configured for is left to it, or it gets two replies.
                self._target(request)
            return system_query(command, self, request)
        if not (command.startswith("state.") or known(command)):
            raise CommandError(f"unknown command {command!r}")
        config = self._target(request)
        room = self._held_room(config)
        if room is None:
            holder = self._holder_of(config)
            if holder is None or forwarded:
                raise CommandError(f"no daz instance is in {config.channel} right now")
            await self._publish(f"daz.bridge.{holder}.command", msg.data, reply=msg.reply or "")
            self.counts["forwarded"] += 1
            return None
        if command.startswith("state."):
            return state_query(command, self.mirrors.get(room.id) or RoomMirror(), request)
        args = request.get("args")
        if not isinstance(args, dict):
            args = {k: v for k, v in request.items() if k not in ("command", "service", "meta")}
        return await self.runner.run(room, command, args)

    def _target(self, request: dict) -> Any:
        """The configured room a request names (``meta.channel``, else a top-level
        ``channel``), or the first configured room when it names none, as the old bridge
        served its one channel."""
        channel, domain = _named_channel(request)
        rooms = self.app.config.enabled_rooms
        if not channel:
            if not rooms:
                raise CommandError("daz has no rooms configured")
            return rooms[0]
        for config in rooms:
            if config.channel.lower() == str(channel).lower() and (
                    not domain or domain == self._room_domain(config)):
                return config
        where = f" on {domain}" if domain else ""
        raise NotOurs(f"no room for channel {channel!r}{where}: left to other bridges")

    def _held_room(self, config: Any) -> Any:
        room = self.app.rooms.get(config.id)
        return room if room is not None and room.channel == config.channel else None

    def _holder_of(self, config: Any) -> str | None:
        holder = self.app.holder
        if holder is None:
            return None
        from daz.scaleout.leases import lease_key

        found = holder.snapshot.holders.get(
            lease_key(config.server_url, config.channel, config.username))
        return found[0] if found and found[0] != str(holder.instance_id) else None

    # ------------------------------------------------------------------ lifecycle

    async def _on_lifecycle(self, msg: Any) -> None:
        self.registry.note(msg.subject, msg.data)
        if msg.subject == GROUP_RESTART:
            self._spawn(self._group_restart(msg.data))

    async def _group_restart(self, data: bytes) -> None:
        try:
            body = json.loads(data)
            delay = float(body.get("delay_seconds", 0)) if isinstance(body, dict) else 0.0
        except (ValueError, TypeError):
            delay = 0.0
        delay = min(max(delay, 0.0), 300.0)
        log.warning("bridge: group restart asked for over NATS; stopping in %.0fs", delay)
        await asyncio.sleep(delay)
        self.app.request_shutdown("kryten.lifecycle.group.restart")

    # ------------------------------------------------------------------ reporting

    def channel_listing(self) -> list[dict[str, Any]]:
        out = []
        holder = self.app.holder
        for config in self.app.config.enabled_rooms:
            room = self._held_room(config)
            entry = {"domain": self._room_domain(config), "channel": config.channel,
                     "connected": bool(room and room.status().get("joined"))}
            if holder is not None:
                info = holder.status()["rooms"].get(config.id) or {}
                entry["instance"] = info.get("holder")
            out.append(entry)
        return out

    def redacted_config(self) -> dict[str, Any]:
        core = self.app.config.core
        return {"nats": {"url": self.url}, "max_rooms": core.max_rooms,
                "rooms": [{"id": r.id, "channel": r.channel, "server_url": r.server_url,
                           "username": r.username} for r in self.app.config.enabled_rooms]}

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "connected": self.connected, "reconnects": self.reconnects,
                "last_error": self.last_error, "counts": dict(self.counts),
                "kv_pending": self.kv.pending()}
