"""mediatracker: plays, per-media stats, the playlist mirror and the media library.

Tables (Go Daz names): ``daz_mediatracker_plays`` (one row per actual play: a media change,
with how long it really played and whether it completed), ``daz_mediatracker_stats`` (per
channel and media: plays, seconds played, first/last played), ``daz_mediatracker_queue`` (the
channel's playlist, kept exact by uid), ``daz_mediatracker_library`` (every media ever seen,
``play_count`` = real plays in any channel).

What is fixed against Go Daz (reference daz-go-plugins §2, schema B13, B14, B17):

* One current play per room, not one global one.
* One play per actual change. CyTube repeats ``setCurrent``/``changeMedia`` on every join and
  after every reconnect; the same item still playing (same type, id and playlist uid, position
  not back at the start) continues the current play. After a restart the channel's newest play
  row is picked up again the same way, and a play closed when the room disconnected is reopened
  if it is still going. The same item played again (a loop, a re-queue) is a new play.
* Only ``changeMedia`` starts plays; ``setCurrent`` only tells us the playlist uid.
* Time played comes from the server's positions (see ``plays.py``); a play is closed by the next
  change, a disconnect, or daz stopping.
* The library counts plays, not queue adds or playlist ingests.

Each new play is announced on the bus as ``PluginEvent("plugin.mediatracker.play")`` (data:
channel, media_id, media_type, title, play_id, started_at), which analytics counts.

Commands: ``!nowplaying``/``!np`` and ``!stats`` (top media of this channel).
"""
from __future__ import annotations

from typing import Any

from daz.commands import CommandContext
from daz.cytube.events import (CurrentChanged, MediaChanged, MediaDeleted, MediaMoved,
                               MediaQueued, MediaUpdate, PlaylistReplaced)
from daz.events import PluginEvent, RoomDisconnected
from daz.plugins.base import Plugin, PluginConfig, command, on
from daz.plugins.mediatracker import store
from daz.plugins.mediatracker.playlist import Mirror
from daz.plugins.mediatracker.plays import TITLE_LIMIT, Play, db_seconds, db_text, link

PLAY_TOPIC = "plugin.mediatracker.play"


def clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def short(title: str, limit: int = 60) -> str:
    title = " ".join(title.split()) or "(untitled)"
    return title if len(title) <= limit else title[: limit - 1] + "…"


class MediaTrackerConfig(PluginConfig):
    stats_limit: int = 5


class MediaTracker(Plugin):
    name = "mediatracker"
    description = "Plays, media stats, the playlist mirror and the media library; !np, !stats"
    schema = "schema.sql"
    Config = MediaTrackerConfig

    async def setup(self) -> None:
        self.plays: dict[str, Play] = {}  # room id → current (or last) play
        self.uids: dict[str, int] = {}  # room id → uid from the last setCurrent
        self.looked_up: set[str] = set()  # rooms whose last play row was read after start
        self.mirrors: dict[str, Mirror] = {}

    async def teardown(self) -> None:
        now = self.ctx.clock.time()
        for play in list(self.plays.values()):
            if play.open:
                await self._end(play, now)

    # ------------------------------------------------------------------ events

    # One subscription for everything, so setCurrent, changeMedia, playlist edits and the
    # disconnect of one room are handled in the order they arrived.
    @on("*", max_queue=100_000, kinds="_handlers")
    async def event(self, event: Any) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            await handler(self, event)

    async def _current(self, ev: CurrentChanged) -> None:
        if ev.uid >= 0:
            self.uids[ev.room_id] = ev.uid

    async def _media(self, ev: MediaChanged) -> None:
        media = ev.media
        mid, mtype = db_text(media.id, 255), db_text(media.type, 50)
        if not mid or self.ctx.db is None:
            return
        t = ev.received_at
        uid = self.uids.get(ev.room_id)
        play = self.plays.get(ev.room_id)
        async with self.ctx.db.pool.acquire() as conn:
            if play is None and ev.room_id not in self.looked_up:
                self.looked_up.add(ev.room_id)
                play = await store.last_play(conn, ev.channel)
            if play is not None and play.continues(mtype, mid, uid, ev.current_time):
                was_open = play.open
                play.observe(ev.current_time, ev.paused, t)
                if play.uid is None:
                    play.uid = uid
                if not was_open:
                    await store.reopen_play(conn, play)
                self.plays[ev.room_id] = play
                return
            if play is not None and play.open:
                play.close(t)
                await store.end_play(conn, play, t)
            queued_by = db_text(self._queued_by(ev.room_id, uid), 255)
            new = Play(channel=ev.channel, media_id=mid, media_type=mtype,
                       title=db_text(media.title, TITLE_LIMIT),
                       duration=db_seconds(media.seconds), uid=uid, started_at=t,
                       queued_by=queued_by, at=t, paused=ev.paused,
                       position=max(0.0, ev.current_time))
            new.play_id = await store.start_play(conn, new)
        self.plays[ev.room_id] = new
        await self.ctx.bus.publish(PluginEvent(
            name=PLAY_TOPIC, room_id=ev.room_id,
            data={"channel": ev.channel, "media_id": new.media_id, "media_type": new.media_type,
                  "title": new.title, "play_id": new.play_id, "started_at": t}))

    async def _update(self, ev: MediaUpdate) -> None:
        play = self.plays.get(ev.room_id)
        if play is not None and play.open:
            play.observe(ev.current_time, ev.paused, ev.received_at)

    async def _playlist(self, ev: Any) -> None:
        room = self.ctx.rooms.get(ev.room_id)
        if room is None or self.ctx.db is None:
            return
        mirror = self.mirrors.setdefault(ev.room_id, Mirror(ev.channel))
        async with self.ctx.db.pool.acquire() as conn:
            how = await mirror.sync(conn, room.state.playlist_items(), ev.received_at)
        if how == "replaced":
            self.log.debug("mediatracker %s: playlist mirror rewritten (%d items)", ev.channel,
                           len(room.state.order))

    async def _disconnected(self, ev: RoomDisconnected) -> None:
        play = self.plays.get(ev.room_id)
        if play is not None and play.open:
            await self._end(play, ev.received_at)

    async def _end(self, play: Play, t: float) -> None:
        play.close(t)
        if self.ctx.db is None or play.play_id is None:
            return
        async with self.ctx.db.pool.acquire() as conn:
            await store.end_play(conn, play, t)

    _handlers = {
        CurrentChanged: _current, MediaChanged: _media, MediaUpdate: _update,
        PlaylistReplaced: _playlist, MediaQueued: _playlist, MediaDeleted: _playlist,
        MediaMoved: _playlist, RoomDisconnected: _disconnected,
    }

    def _queued_by(self, room_id: str, uid: int | None) -> str:
        room = self.ctx.rooms.get(room_id)
        if room is None or uid is None:
            return ""
        item = room.state.playlist.get(uid)
        return item.queueby if item is not None else ""

    # ------------------------------------------------------------------ commands

    @command("nowplaying", aliases=("np",), cooldown=5,
             description="What is playing in this channel right now")
    async def nowplaying(self, ctx: CommandContext) -> None:
        play = self.plays.get(ctx.room.id)
        state = ctx.room.state
        now = self.ctx.clock.time()
        if play is not None and play.open:
            title, mtype, mid, duration = play.title, play.media_type, play.media_id, play.duration
            elapsed = play.elapsed(now)
            queued_by = play.queued_by
        elif state.current_media is not None and state.current_media.id:
            m = state.current_media  # seen before this process tracked it
            title, mtype, mid, duration = m.title, m.type, m.id, m.seconds
            elapsed, queued_by = max(0.0, state.current_time), ""
        else:
            await ctx.reply("Nothing is playing right now.")
            return
        length = clock_text(duration) if duration > 0 else "live"
        text = (f"Now playing: {short(title)} [{link(mtype, mid)}]"
                f" {clock_text(elapsed)} / {length}")
        if queued_by:
            text += f", queued by {queued_by}"
        await ctx.reply(text)

    @command("stats", aliases=("mediastats", "topmedia"), cooldown=10,
             description="The most played media in this channel")
    async def stats(self, ctx: CommandContext) -> None:
        rows = []
        if self.ctx.db is not None:
            async with self.ctx.db.pool.acquire() as conn:
                rows = await store.top_media(conn, ctx.room.channel, self.config.stats_limit)
        if not rows:
            await ctx.reply("No plays recorded in this channel yet.")
            return
        parts = []
        for i, r in enumerate(rows, 1):
            n = r["play_count"]
            parts.append(f"{i}. {short(r['title'], 40)} ({n} play{'s' if n != 1 else ''})")
        await ctx.reply("Most played here: " + " · ".join(parts))
