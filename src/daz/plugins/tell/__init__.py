"""tell: leave a message for someone who is not here; it is passed on when they next show up.

``!tell <user> <message>`` stores a message for a user who is not in the room (someone present,
idle or not, is told to be talked to directly). It is delivered when the recipient next joins
(after ``join_delay_seconds``), chats or sends the bot a PM: in chat, or by PM when the ``!tell``
came by PM. A recipient may have several pending messages, up to ``max_pending_per_recipient``,
and a sender up to ``max_pending_per_sender`` (both per channel; expired messages never count).
``!tells`` / ``!tell list`` lists your pending messages (by PM), ``!tell cancel <id|user>``
withdraws them. Names are matched ignoring case, a leading ``@`` is dropped, and a name that is
not a CyTube name (1-20 of a-z, A-Z, 0-9, -, _) gets a clear reply. The bot cannot be told.

Delivery happens once. Claiming a recipient's messages is one UPDATE that marks them delivered
and names this process (``claimed_by``); two processes on one database, or a join and a chat
line at the same moment, cannot both claim a message. The lines are sent after that commits and
``sent_at`` is then recorded. If daz dies between claim and ``sent_at`` (a window of a few
milliseconds: sending only queues the line) the claim is released after
``claim_timeout_seconds`` and the message is delivered again: in that one case daz prefers a
duplicate to a lost message (at-least-once). A line still in the outbox when the process is
killed outright is lost (at-most-once for that window; a clean stop flushes the outbox).

A chat line or PM costs no database trip unless its speaker may have a message waiting: the
plugin keeps, per channel, the names with pending messages (loaded when the room is joined,
added to on every ``!tell`` here, reloaded every ``recipient_refresh_seconds`` for messages
stored by another daz process on the same database). A join is always looked up in the
database, so such a message is delivered on the recipient's next join at once and on their
chat within one reload. While the names cannot be loaded (database down) every speaker is
looked up, as if there were no list.

Expired messages (``expiry_days``) are never delivered, never block new ones, and are deleted by
a sweep every 5 minutes, which also releases stale claims.

Storing happens once too. Two daz processes (two bot accounts) in one channel both see a public
``!tell``; the row carries ``source_key``, a digest of the chat line it came from (channel, the
server's millisecond time, sender, text; for a PM also the bot it was sent to) under a unique
index, so only the first insert takes effect and only that process confirms. The other stays
silent and its attempt counts against no cap. A line without a server time gets no key.

Table: ``daz_tell_messages`` (Go columns, plus ``sent_at``, ``claimed_by`` and ``source_key``;
the Go unique index that allowed one pending message per recipient is dropped).

Config: ``plugins.tell`` in docs/config.md (the Go tell plugin had no config keys).
"""
from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from typing import Any, ClassVar

from pydantic import Field

from daz.commands import CommandContext, UsageError
from daz.cytube.events import ChatMessage, PrivateMessage, UserJoined, UserLeft
from daz.events import RoomJoined
from daz.humanize import USERNAME, ago, clean_username, one_line
from daz.plugins.base import Example, Plugin, PluginConfig, command, every, in_order
from daz.plugins.tell import store
from daz.plugins.tell.hint import RecipientHint

LIST_LIMIT = 10
USAGE = "!tell <user> <message> | !tell list | !tell cancel <id|user>"


class TellConfig(PluginConfig):
    expiry_days: float = Field(7.0, gt=0, description="Undelivered messages expire after this "
                               "many days: never delivered, never counted, deleted")
    max_pending_per_sender: int = Field(10, ge=1, description="Messages one person may have "
                                        "waiting, per channel")
    max_pending_per_recipient: int = Field(5, ge=1, description="Messages waiting for one "
                                           "person, per channel")
    max_message_length: int = Field(300, ge=10, le=2000, description="Longest message")
    join_delay_seconds: float = Field(2.0, ge=0, description="Delivery waits this long after "
                                      "the recipient joins")
    claim_timeout_seconds: float = Field(600.0, gt=0, description="A message claimed by a "
                                         "process that died before sending it is delivered "
                                         "again after this long")
    recipient_refresh_seconds: float = Field(30.0, gt=0, description="How often the names "
                                             "with messages waiting are reloaded (for messages "
                                             "another daz process stored)")


class Tell(Plugin[TellConfig]):
    name = "tell"
    after = ("sql", "retry")
    description = "Leave a message for someone who is not here"
    retry_operations: ClassVar[dict[str, str]] = {"confirm_delivery": "_retry_confirm_delivery"}

    async def setup(self) -> None:
        # Names this process's claims, so a confirmation or release touches only its own rows.
        self.claimer = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.waiting: dict[tuple[str, str], asyncio.Task] = {}  # delayed deliveries on join
        self.hint = RecipientHint()
        await self.refresh_hints()

    async def teardown(self) -> None:
        tasks = list(self.waiting.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait for every delayed delivery (tests)."""
        if self.waiting:
            await asyncio.wait(list(self.waiting.values()), timeout=timeout)

    # ------------------------------------------------------------------ delivery triggers

    async def _room_joined(self, event: RoomJoined) -> None:
        await self.refresh_hints([event.channel])

    async def _left(self, event: UserLeft) -> None:
        task = self.waiting.pop((event.room_id, event.username.lower()), None)
        if task is not None:
            task.cancel()

    async def _spoke(self, event: ChatMessage | PrivateMessage) -> None:
        if not event.username:
            return
        room = self.ctx.rooms.get(event.room_id)
        if (room is not None and self.hint.may_have(room.channel, event.username)
                and not room.state.is_self(event.username)):
            await self.deliver(room, event.username)

    async def _joined(self, ev: UserJoined) -> None:
        room = self.ctx.rooms.get(ev.room_id)
        name = ev.username
        if room is None or not name or room.state.is_self(name) or not USERNAME.match(name):
            return
        if self.config.join_delay_seconds <= 0:
            await self.deliver(room, name)
            return
        key = (ev.room_id, name.lower())
        if key in self.waiting:
            return
        task = asyncio.create_task(self._deliver_later(room, name), name=f"tell:{name}")
        self.waiting[key] = task
        task.add_done_callback(
            lambda t: self.waiting.pop(key, None) if self.waiting.get(key) is t else None)

    event = in_order({UserJoined: _joined, RoomJoined: _room_joined, UserLeft: _left,
                      ChatMessage: _spoke, PrivateMessage: _spoke}, max_queue=50_000)

    async def _deliver_later(self, room: Any, name: str) -> None:
        await asyncio.sleep(self.config.join_delay_seconds)
        if room.state.is_present(name):
            await self.deliver(room, name)

    async def deliver(self, room: Any, name: str) -> int:
        """Send every pending message for ``name`` in this room; returns how many were sent.

        Always asks the database (joins come here directly); chat lines only when the hint
        says ``name`` may have something waiting.
        """
        if not USERNAME.match(name):
            return 0
        now = self.ctx.clock.time()
        since = self.hint.mark()
        try:
            async with self.ctx.db.acquire() as conn:
                rows = await store.claim(conn, room.channel, name, now, self.claimer)
        except Exception as exc:  # nothing claimed: the messages wait for the next chance
            self.log.warning("tell %s: cannot look up messages for %s: %s", room.channel, name,
                             exc)
            return 0
        if not rows:
            self.hint.settled(room.channel, name, since)
            return 0
        sent: list[int] = []
        try:
            for row in rows:
                line = self._format(row, name, now)
                if row["is_pm"]:
                    await room.pm(name, line, user_input=True)
                else:
                    await room.say(line, user_input=True)
                sent.append(row["id"])
        finally:
            unsent = [row["id"] for row in rows if row["id"] not in sent]
            await self._confirm(room.channel, sent, unsent, now)
            if unsent:  # released for a later chance: it must be asked for again
                self.hint.stored(room.channel, name)
            else:
                self.hint.settled(room.channel, name, since)
        self.log.info("tell %s: delivered %d message(s) to %s", room.channel, len(sent), name)
        return len(sent)

    @staticmethod
    def _format(row: Any, name: str, now: float) -> str:
        when = ago(row["created_at"], now)
        if row["is_pm"]:
            return f"{row['from_user']} left you a message {when}: {row['message']}"
        return f"{name}: {row['from_user']} left you a message {when}: {row['message']}"

    async def _confirm(self, channel: str, sent: list[int], unsent: list[int],
                       now: float) -> None:
        try:
            async with self.ctx.db.acquire() as conn:
                if sent:
                    await store.mark_sent(conn, sent, now, self.claimer)
                if unsent:
                    await store.release(conn, unsent, self.claimer)
        except Exception as exc:
            self.log.warning("tell %s: could not record delivery of %s (%s); queued for retry",
                             channel, sent, exc)
            payload = {"sent": sent, "unsent": unsent, "t": now, "claimer": self.claimer}
            await self.defer_retry("confirm_delivery", payload,
                                   key=f"tell:{self.claimer}:{min(sent + unsent)}",
                                   error=str(exc)[:500])

    async def _retry_confirm_delivery(self, payload: dict) -> None:
        async with self.ctx.db.acquire() as conn:  # both statements are idempotent
            if payload.get("sent"):
                await store.mark_sent(conn, payload["sent"], payload["t"], payload["claimer"])
            if payload.get("unsent"):
                await store.release(conn, payload["unsent"], payload["claimer"])

    # ------------------------------------------------------------------ commands

    @command("tell", cooldown=3, usage=USAGE, description="Leave a message for someone",
             examples=[Example("!tell bob see you at eight",
                               re.compile(r"OK, I'll tell bob in chat when they're next around"
                                          r" \(#\d+, kept for 7 days\)\..*")),
                       ("!tell list", "You have no messages waiting to be delivered."),
                       ("!tell cancel bob", "You have no undelivered messages for bob.")])
    async def tell(self, ctx: CommandContext, user: str, *message: str) -> None:
        # The message as typed (quotes, apostrophes), not the words the parser split it into.
        first, _, rest = ctx.rest.strip().partition(" ")
        await self._store(ctx, first, rest.strip())

    @tell.subcommand("list", description="Your messages not yet delivered (by PM)")
    async def tell_list(self, ctx: CommandContext) -> None:
        await self._list(ctx)

    @tell.subcommand("cancel", usage="!tell cancel <id|user>",
                     description="Take back an undelivered message, by its id or recipient")
    async def tell_cancel(self, ctx: CommandContext, what: str) -> None:
        await self._cancel(ctx, what)

    @command("tells", cooldown=3, usage="!tells", description="Your messages not yet delivered",
             examples=[Example("!tells", "You have no messages waiting to be delivered.",
                               pm=True)])
    async def tells(self, ctx: CommandContext) -> None:
        await self._list(ctx)

    async def _store(self, ctx: CommandContext, target: str, message: str) -> None:
        cfg = self.config
        name = clean_username(target)
        if name is None:
            shown = one_line(target, 30)
            await ctx.reply(f"\"{shown}\" isn't a CyTube username (1-20 letters, digits, - or _).")
            return
        message = one_line(message)
        if not message:
            raise UsageError("!tell <user> <message>")
        state = ctx.room.state
        if ctx.room.is_self(name):
            await ctx.reply("I can't leave a message for myself.")
            return
        if name.lower() == ctx.username.lower():
            await ctx.reply("That's you. Consider it told.")
            return
        here = state.user(name)
        if here is not None:
            await ctx.reply(f"{here.name} is here right now, tell them yourself.")
            return
        if len(message) > cfg.max_message_length:
            await ctx.reply(f"That message is {len(message)} characters long; the limit is"
                            f" {cfg.max_message_length}.")
            return
        now = self.ctx.clock.time()
        event = ctx.event
        key = store.source_key(
            ctx.room.channel, sender=ctx.username, text=getattr(event, "msg", ""),
            server_ms=getattr(event, "time", 0),
            pm_to=(getattr(event, "to", "") or ctx.room.bot_name or "") if ctx.via_pm else None)
        try:
            async with self.ctx.db.acquire() as conn:
                new_id, full = await store.add(
                    conn, channel=ctx.room.channel, sender=ctx.username, recipient=name,
                    message=message, is_pm=ctx.via_pm, t=now,
                    expires=now + cfg.expiry_days * 86400,
                    max_per_sender=cfg.max_pending_per_sender,
                    max_per_recipient=cfg.max_pending_per_recipient, key=key)
                known = await store.known_here(conn, ctx.room.channel, name) if new_id else None
        except Exception as exc:
            self.log.warning("tell %s: could not store a message from %s: %s", ctx.room.channel,
                             ctx.username, exc)
            await ctx.reply("I couldn't save that message; please try again later.")
            return
        if new_id is not None:
            self.hint.stored(ctx.room.channel, name)
        if full == "duplicate":
            # This very line was stored (and answered) already, by the other daz process here.
            self.log.debug("tell %s: %s's line was stored by another process", ctx.room.channel,
                           ctx.username)
        elif full == "sender":
            await ctx.reply(f"You already have {cfg.max_pending_per_sender} messages waiting"
                            " to be delivered; cancel one first (!tells to list them).")
        elif full == "recipient":
            await ctx.reply(f"{name} already has {cfg.max_pending_per_recipient} messages"
                            " waiting; try again once they've been by.")
        else:
            days = f"{cfg.expiry_days:g} day{'s' if cfg.expiry_days != 1 else ''}"
            note = (f" (I've never seen {name} here, so check the spelling.)"
                    if known is False else "")
            how = "by PM" if ctx.via_pm else "in chat"
            await ctx.reply(f"OK, I'll tell {name} {how} when they're next around (#{new_id},"
                            f" kept for {days}).{note}")

    async def _list(self, ctx: CommandContext) -> None:
        now = self.ctx.clock.time()
        try:
            async with self.ctx.db.acquire() as conn:
                rows = await store.pending_from(conn, ctx.room.channel, ctx.username, now)
        except Exception as exc:
            self.log.warning("tell: cannot list %s's messages: %s", ctx.username, exc)
            await ctx.reply_pm("I couldn't look that up just now; please try again later.")
            return
        if not rows:
            await ctx.reply_pm("You have no messages waiting to be delivered.")
            return
        # Listed by PM: what was sent privately stays private.
        await ctx.reply_pm(f"Your {len(rows)} message(s) waiting (cancel with !tell cancel"
                           " <id|user>):")
        for row in rows[:LIST_LIMIT]:
            text = row["message"] if len(row["message"]) <= 60 else row["message"][:57] + "..."
            await ctx.reply_pm(f"#{row['id']} for {row['to_user']}, {ago(row['created_at'], now)}"
                               f": {text}")
        if len(rows) > LIST_LIMIT:
            await ctx.reply_pm(f"...and {len(rows) - LIST_LIMIT} more.")

    async def _cancel(self, ctx: CommandContext, what: str) -> None:
        number = what.lstrip("#")
        name = None if number.isdigit() else clean_username(what)
        if not number.isdigit() and name is None:
            raise UsageError("!tell cancel <id|user> (an id from !tells, or a username)")
        try:
            async with self.ctx.db.acquire() as conn:
                if name is None:
                    tell_id = int(number) if len(number) <= 9 else 0  # ids are int4
                    to = await store.cancel_id(conn, ctx.room.channel, ctx.username, tell_id)
                    reply = (f"Cancelled #{number} (for {to})." if to else
                             f"You have no undelivered message #{number}.")
                else:
                    n = await store.cancel_for(conn, ctx.room.channel, ctx.username, name)
                    reply = (f"Cancelled {n} message(s) for {name}." if n else
                             f"You have no undelivered messages for {name}.")
        except Exception as exc:
            self.log.warning("tell: cannot cancel for %s: %s", ctx.username, exc)
            reply = "I couldn't do that just now; please try again later."
        await ctx.reply(reply)

    # ------------------------------------------------------------------ upkeep

    @every(config="recipient_refresh_seconds")
    async def refresh_timer(self) -> None:
        try:
            await self.refresh_hints()
        except Exception:  # the next round tries again; the hint stays as it was
            self.log.exception("tell: reloading pending recipients failed")

    async def refresh_hints(self, channels: list[str] | None = None) -> bool:
        """Reload who may have messages waiting (every room's channel unless ``channels``)."""
        if channels is None:
            channels = sorted({room.channel for room in self.ctx.rooms})
        if not channels:
            return False
        since = self.hint.mark()
        try:
            async with self.ctx.db.acquire() as conn:
                found = await store.pending_recipients(conn, channels, self.ctx.clock.time())
        except Exception as exc:
            # Without the list every speaker is looked up (as before it existed): slower, but
            # a message stored by another process is never skipped because the database was
            # away when we tried to learn about it.
            for channel in channels:
                self.hint.forget(channel)
            self.log.warning("tell: cannot load pending recipients for %s (%s); looking up"
                             " every speaker until it works", ", ".join(channels), exc)
            return False
        for channel, names in found.items():
            self.hint.load(channel, names, since)
        return True

    @every(minutes=5, initial_delay=60)
    async def sweep(self) -> None:
        await self.sweep_now()

    async def sweep_now(self) -> tuple[int, int]:
        """Release claims whose process died; delete expired messages. (released, purged)"""
        now = self.ctx.clock.time()
        async with self.ctx.db.acquire() as conn:
            released = await store.release_stale(conn, now, self.config.claim_timeout_seconds)
            purged = await store.purge_expired(conn, now)
        if released:  # given back to be delivered: their recipients must be asked for again
            await self.refresh_hints()
        if released or purged:
            self.log.info("tell: released %d stale claim(s), purged %d expired message(s)",
                          released, purged)
        return released, purged
