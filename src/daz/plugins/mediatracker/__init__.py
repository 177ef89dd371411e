"""mediatracker: plays, per-media stats, the playlist mirror and the media library.

Tables (Go Daz names): ``daz_mediatracker_plays`` (one row per actual play: a media change,
with how long it really played and whether it completed), ``daz_mediatracker_stats`` (per
channel and media: plays, seconds played, first/last played), ``daz_mediatracker_queue`` (the
channel's playlist, kept exact by uid), ``daz_mediatracker_library`` (every media ever seen,
``play_count`` = real plays in any channel).

How plays are counted (and how the Go bot counted them: docs/upgrading-from-go.md, "Plays"):

* One current play per room, not one global one.
* One play per actual change. CyTube repeats ``setCurrent``/``changeMedia`` on every join and
  after every reconnect; the same item still playing (same type, id and playlist uid, position
  not back at the start) continues the current play. After a restart the channel's newest play
  row is picked up again the same way, and a play closed when the room disconnected is reopened
  if it is still going. A restarted CyTube server reloads the channel with new playlist uids
  and the item a few seconds back: after any gap in watching, the uid is not compared and the
  item may come back up to 30 s behind (``plays.RESUME_REWIND``) and still be the same play,
  with one row and one count. The same item played again (a loop, a re-queue) from its start
  is a new play.
* Only ``changeMedia`` starts plays; ``setCurrent`` only tells us the playlist uid.
* Time played comes from the server's positions (see ``plays.py``); a play is closed by the next
  change, a disconnect, or daz stopping.
* The library counts plays, not queue adds or playlist ingests.

Each new play is announced on the bus as ``PluginEvent("plugin.mediatracker.play")`` (data:
channel, media_id, media_type, title, play_id, started_at), which analytics counts.

**When the database goes away** (``daz.db.held``): what a play is, and how long it played, is
decided in memory from the server's events as always; only the writes wait. A play start, end
or reopen that fails on the connection is held per room, in event order, with a snapshot of the
play and the event's time, and applied in that order once the database answers, so a play that
began or ended during the outage gets its row, its real start and end and its played time.
Those writes are idempotent (``store.py``): applied again after a COMMIT whose reply was lost,
they neither add a row nor count seconds twice. The playlist mirror is not replayed event by
event: a held room keeps one pending "sync", which makes the table match ``RoomState`` (exact by
uid) when it runs; the queue times of items added meanwhile are the real ones. At most
``held_writes_limit`` writes per room are held (past that the oldest are dropped, logged as an
error). Held writes are in the journal (``<data_dir>/journal/mediatracker-held.journal``)
until applied; what is left at a stop or a crash is applied first at the next start (the
journal keeps their order; the mirror needs no saving, the first sync after a start rewrites
it, so a held sync is not applied then). If the very first media change after a start comes
while the database is away, the channel's last play row cannot be read, so that change starts a
new play even when it is the item that was playing before the restart.

Config: ``plugins.mediatracker`` in docs/config.md.

Commands: ``!nowplaying``/``!np`` (the title, where it is, and the item's page as CyTube links it
for media types that have one: yt, vi, dm, tw, sc, ...; never the raw media id) and ``!stats``
(top media of this channel).
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from daz.commands import CommandContext
from daz.cytube.events import (
    CurrentChanged,
    MediaChanged,
    MediaDeleted,
    MediaMoved,
    MediaQueued,
    MediaUpdate,
    PlaylistReplaced,
)
from daz.db.held import HeldWrites, HeldWritesConfig, transient
from daz.events import PluginEvent, RoomDisconnected
from daz.plugins.base import Plugin, PluginConfig, command, in_order
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


class MediaTrackerConfig(PluginConfig, HeldWritesConfig):
    stats_limit: int = Field(5, description="Media !stats lists")


class MediaTracker(Plugin[MediaTrackerConfig]):
    name = "mediatracker"
    after = ("sql",)
    description = "Plays, media stats, the playlist mirror and the media library; !np, !stats"

    async def setup(self) -> None:
        self.plays: dict[str, Play] = {}  # room id → current (or last) play
        self.uids: dict[str, int] = {}  # room id → uid from the last setCurrent
        self.looked_up: set[str] = set()  # rooms whose last play row was read after start
        self.mirrors: dict[str, Mirror] = {}
        self.held = HeldWrites.for_plugin(self, self._apply, keep=_worth_saving)
        await self.held.restore()

    async def teardown(self) -> None:
        now = self.ctx.clock.time()
        for room_id, play in list(self.plays.items()):
            if play.open:
                await self._end(room_id, play, now)
        await self.held.shutdown()

    async def save_for_next_start(self) -> None:
        await self.held.save_now()

    # ------------------------------------------------------------------ events

    async def _current(self, ev: CurrentChanged) -> None:
        if ev.uid >= 0:
            self.uids[ev.room_id] = ev.uid

    async def _media(self, ev: MediaChanged) -> None:
        media = ev.media
        mid, mtype = db_text(media.id, 255), db_text(media.type, 50)
        if not mid:
            return
        t = ev.received_at
        uid = self.uids.get(ev.room_id)
        play = self.plays.get(ev.room_id)
        if play is None and ev.room_id not in self.looked_up:
            self.looked_up.add(ev.room_id)
            play = await self._last_play(ev.room_id, ev.channel)
        if play is not None and play.continues(mtype, mid, uid, ev.current_time):
            was_open = play.open
            play.observe(ev.current_time, ev.paused, t)
            if uid is not None:
                play.uid = uid  # a restarted server renumbers its playlist
            self.plays[ev.room_id] = play
            if not was_open:
                await self.held.submit(ev.room_id, {"op": "reopen", "play": play.snapshot()})
            return
        if play is not None and play.open:
            await self._end(ev.room_id, play, t)
        queued_by = db_text(self._queued_by(ev.room_id, uid), 255)
        new = Play(channel=ev.channel, media_id=mid, media_type=mtype,
                   title=db_text(media.title, TITLE_LIMIT),
                   duration=db_seconds(media.seconds), uid=uid, started_at=t,
                   queued_by=queued_by, at=t, paused=ev.paused,
                   position=max(0.0, ev.current_time))
        self.plays[ev.room_id] = new
        # Applied now (the id is set before the announcement), or held: play_id stays None.
        await self.held.submit(ev.room_id, {"op": "start", "play": new.snapshot()})
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
        if room is None:
            return
        mirror = self.mirrors.setdefault(ev.room_id, Mirror(ev.channel))
        for uid in room.state.playlist:  # queued now, even if written later
            mirror.queued_at.setdefault(uid, ev.received_at)
        last = self.held.last(ev.room_id)
        if last is not None and last["op"] == "sync":
            return  # a held sync reads RoomState when it runs: one is enough
        await self.held.submit(ev.room_id, {"op": "sync", "room": ev.room_id,
                                             "t": ev.received_at})

    async def _disconnected(self, ev: RoomDisconnected) -> None:
        play = self.plays.get(ev.room_id)
        if play is not None and play.open:
            await self._end(ev.room_id, play, ev.received_at)

    async def _end(self, room_id: str, play: Play, t: float) -> None:
        play.close(t)
        await self.held.submit(room_id, {"op": "end", "play": play.snapshot(), "t": t})

    async def _last_play(self, room_id: str, channel: str) -> Play | None:
        """The channel's newest play row (to carry on after a restart); None when the database
        does not answer (and not even asked while the room's writes are held)."""
        if self.held.holding(room_id):
            return None
        try:
            async with self.ctx.db.acquire() as conn:
                return await store.last_play(conn, channel)
        except Exception as exc:
            if not transient(exc):
                raise
            self.log.warning("mediatracker %s: could not read the last play (%s); a change now"
                             " is a new play", channel, exc)
            return None

    async def _apply(self, conn, op: dict) -> None:
        """Run one write (now, or later in order when it was held)."""
        kind = op["op"]
        if kind == "sync":
            await self._sync_mirror(conn, op)
            return
        snap = Play.from_snapshot(op["play"])
        if kind == "start":
            play_id = await store.start_play(conn, snap)
            for live in self.plays.values():
                if (live.play_id is None and live.channel == snap.channel
                        and live.key == snap.key and live.started_at == snap.started_at):
                    live.play_id = play_id
        elif kind == "end":
            await store.end_play(conn, snap, op["t"])
        elif kind == "reopen":
            await store.reopen_play(conn, snap)
        else:
            raise ValueError(f"unknown mediatracker operation {kind!r}")

    async def _sync_mirror(self, conn, op: dict) -> None:
        room = self.ctx.rooms.get(op["room"])
        if room is None:
            return
        mirror = self.mirrors.setdefault(room.id, Mirror(room.channel))
        how = await mirror.sync(conn, room.state.playlist_items(), op["t"])
        if how == "replaced":
            self.log.debug("mediatracker %s: playlist mirror rewritten (%d items)", room.channel,
                           len(room.state.order))

    event = in_order({
        CurrentChanged: _current, MediaChanged: _media, MediaUpdate: _update,
        PlaylistReplaced: _playlist, MediaQueued: _playlist, MediaDeleted: _playlist,
        MediaMoved: _playlist, RoomDisconnected: _disconnected,
    }, max_queue=100_000)

    def _queued_by(self, room_id: str, uid: int | None) -> str:
        room = self.ctx.rooms.get(room_id)
        if room is None or uid is None:
            return ""
        item = room.state.playlist.get(uid)
        return item.queueby if item is not None else ""

    # ------------------------------------------------------------------ commands

    @command("nowplaying", aliases=("np",), cooldown=5,
             description="What is playing in this channel right now",
             examples=[("!np", "Nothing is playing right now.")])
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
        url = link(mtype, mid)
        text = f"Now playing: {short(title)}{f' [{url}]' if url else ''}" \
               f" {clock_text(elapsed)} / {length}"
        if queued_by:
            text += f", queued by {queued_by}"
        await ctx.reply(text)

    @command("stats", aliases=("mediastats", "topmedia"), cooldown=10,
             description="The most played media in this channel",
             examples=[("!stats", "No plays recorded in this channel yet.")])
    async def stats(self, ctx: CommandContext) -> None:
        async with self.ctx.db.acquire() as conn:
            rows = await store.top_media(conn, ctx.room.channel, self.config.stats_limit)
        if not rows:
            await ctx.reply("No plays recorded in this channel yet.")
            return
        parts = []
        for i, r in enumerate(rows, 1):
            n = r["play_count"]
            parts.append(f"{i}. {short(r['title'], 40)} ({n} play{'s' if n != 1 else ''})")
        await ctx.reply("Most played here: " + " · ".join(parts))


def _worth_saving(op: dict) -> bool:
    """The mirror needs no saving: the first sync after the next start rewrites it."""
    return op["op"] != "sync"
