"""The task that sends one Room's outbox, and the feedback loop from the server's answers.

The Outbox (outbox.py) decides what may go and when; this drives it over the live socket. Lines
go out only while the room is joined (``ready``): queued before the join or during a reconnect,
they wait instead of being lost. Every line handed to the server is published as MessageSent.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from daz.cytube import events as ev
from daz.cytube.outbox import SERVER_BURST, SERVER_RATE, safe_limits
from daz.events import MessageSent

if TYPE_CHECKING:
    from daz.cytube.room import Room

log = logging.getLogger(__name__)

# errorMsg texts that answer a PM of ours (the server sends no echo then)
PM_REFUSALS = ("pm failed", "you can't pm yourself", "you must be signed in to send pms")


class OutboxPump:
    def __init__(self, room: Room):
        self.room = room
        self.ready = asyncio.Event()  # joined: the pump may send
        self._wake = asyncio.Event()

    def resume(self) -> None:
        """The room joined: send what waited."""
        self.ready.set()
        self.outbox_changed()

    def pause(self) -> None:
        """The socket is gone or going: hold lines until the next join."""
        self.ready.clear()

    def outbox_changed(self) -> None:
        metrics = self.room.metrics
        if metrics is not None:
            metrics.outbox_depth.labels(room=self.room.id).set(self.room.outbox.depth)
        self._wake.set()

    def apply_limits(self) -> None:
        """Follow the channel's flood limit for our current rank (it can change any time)."""
        state, outbox = self.room.state, self.room.outbox
        flood = state.antiflood
        if flood is None:
            outbox.set_limits(*safe_limits(SERVER_BURST, SERVER_RATE))
            return
        params = state.options.get("chat_antiflood_params")
        cooldown = params.get("cooldown") if isinstance(params, dict) else None
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)):
            cooldown = None
        outbox.set_limits(*safe_limits(*flood, cooldown))

    def server_answered(self, event: ev.CytubeEvent) -> None:
        """Each line we send gets one answer (our echo, a cooldown, a PM refusal); the outbox
        uses them to know what arrived and what to send again."""
        outbox, now = self.room.outbox, time.monotonic()
        if isinstance(event, ev.ChatMessage):
            if event.own and not event.replayed:
                outbox.echo("chat", event.text, now)
        elif isinstance(event, ev.PrivateMessage):
            if event.own:
                outbox.echo("pm", event.text, now)
        elif isinstance(event, ev.Cooldown):
            dropped = outbox.cooldown(event.milliseconds, now)
            log.info("room %s: server cooldown %.0f ms%s", self.room.id, event.milliseconds,
                     "; resending the dropped line" if dropped else "")
            self.outbox_changed()
        elif isinstance(event, ev.ErrorMessage):
            log.info("room %s: server error: %s", self.room.id, event.msg[:200])
            if event.msg.lower().startswith(PM_REFUSALS):
                outbox.failed("pm", now)

    async def run(self) -> None:
        room, outbox = self.room, self.room.outbox
        while True:
            await self.ready.wait()
            self.apply_limits()
            self._wake.clear()
            now = time.monotonic()
            delay = outbox.delay(now)
            if delay is None:
                await self._wake.wait()
                continue
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                continue
            conn = room.lifecycle.conn
            if conn is None or not conn.connected:
                await asyncio.sleep(0.05)  # the lifecycle is about to pause us
                continue
            message = outbox.pop(now)
            try:
                if message.to is None:
                    await conn.emit("chatMsg", {"msg": message.text, "meta": {}})
                else:
                    await conn.emit("pm", {"to": message.to, "msg": message.text, "meta": {}})
            except ConnectionError:
                outbox.unsent(message)
                await asyncio.sleep(0.05)
                continue
            if room.metrics is not None:
                room.metrics.outbox_sent.labels(room=room.id, kind=message.kind).inc()
                room.metrics.outbox_depth.labels(room=room.id).set(outbox.depth)
            room.intake.publish(MessageSent(room_id=room.id, channel=room.channel,
                                            text=message.text, to=message.to))
