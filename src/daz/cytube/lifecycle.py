"""The connection lifecycle of one Room: connect, join, log in, and when the socket is gone decide
whether and when to try again.

One attempt: discover → connect → joinChannel → login → wait until the socket is gone (or not
joined within ``Room.join_timeout``) → verdict. What ended the session decides the verdict: a
login refusal or a kick seen by the frame intake (``session_verdict``), else the socket's own
close reason. reconnect_policy.py holds the rules (which failures are final, how long to wait);
this module applies them. Each room has its own lifecycle task, so one room reconnecting never
stalls another.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import aiohttp

from daz.cytube import events as ev
from daz.cytube.connection import ConnectFailed, Connection, DiscoveryError, discover
from daz.cytube.reconnect_policy import (
    RATE_LIMIT_WAIT,
    Backoff,
    Verdict,
    judge_kick,
    judge_login_error,
)
from daz.events import RoomConnected, RoomDisconnected, RoomJoined

if TYPE_CHECKING:
    from daz.cytube.room import Room

log = logging.getLogger(__name__)


class RoomLifecycle:
    def __init__(self, room: Room, http: aiohttp.ClientSession | None = None):
        self.room = room
        self.backoff = Backoff(cap=room.config.max_backoff_seconds)
        self.conn: Connection | None = None
        self.gave_up: str | None = None
        self.last_error: str | None = None
        self.reconnects = 0
        self.last_retry_delay = 0.0  # seconds the lifecycle last waited before reconnecting
        self.session_verdict: Verdict | None = None  # set when a frame decides the session's end
        self.stop_requested = asyncio.Event()  # cuts a backoff wait short
        self.side_tasks: set[asyncio.Task] = set()
        self._http = http
        self._own_http: aiohttp.ClientSession | None = None
        self._failures = 0  # consecutive attempts that did not reach "joined"
        self._connects = 0
        self._joins = 0
        self._joined_at = 0.0
        self._duplicate_kicks = 0

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        room = self.room
        http = self._http
        if http is None or http.closed:
            http = self._own_http = aiohttp.ClientSession()
        attempt = 0
        while not room.stopping:
            if attempt:
                self.reconnects += 1
                if room.metrics is not None:
                    room.metrics.reconnects.labels(room=room.id).inc()
            attempt += 1
            verdict, was_connected, joined_for = await self._attempt(http)
            if room.stopping:
                if was_connected:
                    self._disconnected("stopped", will_retry=False)
                break
            self._failures += 1
            # reconnect_attempts N: after a loss (or a failed first connect), N more tries that
            # each fail to reach "joined", then stop. 0 keeps trying.
            limit = room.config.reconnect_attempts
            if not verdict.fatal and limit and self._failures > limit:
                verdict = Verdict(fatal=True, reason=f"gave up after {limit} failed reconnect "
                                                     f"attempt(s); last: {verdict.reason}")
            if was_connected:
                self._disconnected(verdict.reason, will_retry=not verdict.fatal)
            if verdict.fatal:
                self._give_up(verdict.reason)
                break
            self.backoff.connected_for(joined_for)
            delay = (room.config.max_backoff_seconds if verdict.slow
                     else self.backoff.next_delay(verdict.min_wait))
            self.last_retry_delay = delay
            log.info("room %s: reconnecting in %.1fs (%s)", room.id, delay, verdict.reason)
            try:
                await asyncio.wait_for(self.stop_requested.wait(), delay)
            except TimeoutError:
                pass

    async def _attempt(self, http: aiohttp.ClientSession) -> tuple[Verdict, bool, float]:
        """One connection, start to end: (what went wrong, whether it connected, joined for s)."""
        room = self.room
        self.session_verdict = None
        room.intake.new_session()
        try:
            url = await discover(http, room.config.server_url, room.channel)
        except DiscoveryError as exc:
            return self._failed(str(exc)), False, 0.0
        pacer = room.pacer
        if pacer is not None and not await pacer.turn(url, room.id, self.stop_requested):
            return Verdict(reason="stopping"), False, 0.0
        conn = Connection(url, room.intake.on_frame, pace=room.intake, name=room.id,
                          max_frame_bytes=int(room.config.max_frame_mib * 1024 * 1024))
        self.conn = conn
        try:
            await conn.open()
        except asyncio.CancelledError:
            self.conn = None
            await conn.close("stopping")
            raise
        except ConnectFailed as exc:
            self.conn = None
            if exc.banned:
                return Verdict(fatal=True, reason=str(exc)), False, 0.0
            if exc.rate_limited and pacer is not None:
                pacer.refused(url)
            return self._failed(str(exc), RATE_LIMIT_WAIT if exc.rate_limited else 0.0), \
                False, 0.0
        try:
            room.intake.publish(RoomConnected(room_id=room.id, channel=room.channel,
                                              reconnect=self._connects > 0))
            self._connects += 1
            log.info("room %s: connected to %s", room.id, url)
            await conn.emit("joinChannel", {"name": room.channel})
            if room.config.username:
                await conn.emit("login", self._login_payload())
            try:
                await asyncio.wait_for(conn.closed.wait(), room.join_timeout)
            except TimeoutError:
                if not room.state.joined:
                    await conn.close(f"not joined after {room.join_timeout:g}s")
            await conn.closed.wait()
        except ConnectionError:
            pass  # closed while we were sending the join; the reason is on conn
        finally:
            room.pump.pause()
            self.report_connected(False)
            if not conn.closed.is_set():
                await conn.close("stopping")
            self.conn = None
        joined_for = time.monotonic() - self._joined_at if room.state.joined else 0.0
        room.state.joined = False
        # Unanswered lines may be lost with the socket: send them again on the next one. When
        # stopping there is no next one, and they most likely arrived.
        requeued = 0 if room.stopping else room.outbox.requeue_in_flight()
        if requeued:
            log.info("room %s: %d unanswered line(s) will be sent again", room.id, requeued)
        verdict = self.session_verdict or Verdict(reason=conn.close_reason or "disconnected")
        self.last_error = verdict.reason
        if not room.stopping:
            log.warning("room %s: connection ended: %s", room.id, verdict.reason)
        return verdict, True, joined_for

    def _failed(self, reason: str, min_wait: float = 0.0) -> Verdict:
        self.last_error = reason
        log.warning("room %s: %s", self.room.id, reason)
        return Verdict(min_wait=min_wait, reason=reason)

    def _disconnected(self, reason: str, *, will_retry: bool) -> None:
        room = self.room
        room.intake.publish(RoomDisconnected(room_id=room.id, channel=room.channel,
                                             reason=reason, will_retry=will_retry))

    def _give_up(self, reason: str) -> None:
        room = self.room
        self.gave_up = reason
        self.last_error = reason
        log.error("room %s: giving up: %s", room.id, reason)
        dropped = room.outbox.clear("the room gave up")
        if dropped:
            room.pump.outbox_changed()

    # ------------------------------------------------------------------ what frames tell us

    def joined(self) -> None:
        """The frame intake saw the end of the join burst."""
        room = self.room
        self._joins += 1
        self._failures = 0
        self._joined_at = time.monotonic()
        self.last_error = None
        room.intake.publish(RoomJoined(room_id=room.id, channel=room.channel,
                                       bot_name=room.bot_name, reconnect=self._joins > 1))
        log.info("room %s: joined %s as %s", room.id, room.channel, room.bot_name or "anonymous")
        self.report_connected(True)
        room.pump.resume()

    def login_result(self, event: ev.LoginResult) -> None:
        room = self.room
        if event.success:
            log.info("room %s: logged in as %s%s", room.id, event.username or room.bot_name,
                     " (guest)" if event.guest else "")
            return
        verdict = judge_login_error(event.error)
        self.last_error = verdict.reason
        log.warning("room %s: %s", room.id, verdict.reason)
        conn = self.conn
        if conn is None:
            return
        if verdict.relogin:
            self._side_task(self._login_again(conn, verdict.min_wait))
            return
        self.session_verdict = verdict
        self._side_task(conn.close(verdict.reason))

    def kicked(self, event: ev.Kicked) -> None:
        verdict = judge_kick(event.reason, self._duplicate_kicks)
        if "duplicate login" in event.reason.lower():
            self._duplicate_kicks += 1
        self.session_verdict = verdict
        log.warning("room %s: %s", self.room.id, verdict.reason)

    def _login_payload(self) -> dict:
        config = self.room.config
        if config.password:
            return {"name": config.username, "pw": config.password}
        return {"name": config.username}

    async def _login_again(self, conn: Connection, wait: float) -> None:
        log.info("room %s: trying the guest login again in %.0fs", self.room.id, wait)
        try:
            await asyncio.wait_for(conn.closed.wait(), wait)
            return  # the socket went away; the loop starts over
        except TimeoutError:
            pass
        if conn.connected and not self.room.state.logged_in:
            try:
                await conn.emit("login", self._login_payload())
            except ConnectionError:
                pass

    # ------------------------------------------------------------------ housekeeping

    def _side_task(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.side_tasks.add(task)
        task.add_done_callback(self.side_tasks.discard)

    def report_connected(self, up: bool) -> None:
        metrics = self.room.metrics
        if metrics is not None:
            metrics.room_connected.labels(room=self.room.id).set(1 if up else 0)

    async def close_http(self) -> None:
        if self._own_http is not None:
            await self._own_http.close()
