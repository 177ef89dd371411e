"""ollama: the bot answers in chat when addressed by name, with a local Ollama model.

When a reply is attempted
    A public chat line (the manager already drops history replay, our own echoes, ``[server]``
    whispers and shadow-muted lines) that names the bot as a whole word (``room.bot_name`` or an
    alias; "dazzling" does not name "daz"), or comes from someone the bot answered within the
    follow-up window. Commands (``!…``, ``/…``), ignored users (other bots), the bot itself and
    lines older than ``max_message_age_seconds`` get nothing.

What the model sees
    The persona (``system_prompt``), the room (channel, people present, now playing, from the
    live RoomState) and the room's recent chat, the bot's own lines included (as assistant
    turns, from ``MessageSent``), then the line being answered.

Exactly once, and not too often
    Before the model is called the message is claimed in ``daz_ollama_responses`` (unique key),
    so two daz processes on one database never both answer; then the per-user and per-channel
    limits in ``daz_ollama_rate_limits`` are taken in one transaction. While the database does
    not answer, nothing is claimed, so nobody is answered.

Failures
    A failing, slow, hanging or garbage-returning server means no reply and a log line; there is
    no canned stand-in answer. Model calls are never retried: a chat reply is only worth sending
    while the conversation is still about it, and a retry after a 30 s timeout would answer a
    moment that has passed. Storing the reply text is retried through the retry queue.

For other plugins
    Bus request ``ollama.generate`` with ``{"purpose", "prompt", "channel", "username",
    "max_chars"}`` returns the text or raises (``OllamaFailure``, ``ValueError``); the greeter
    falls back to its own text. Rate limits do not apply to it.

Config: ``plugins.ollama`` in docs/config.md (Go Daz key names where Go had the setting). Off
unless ``"enabled": true``, because it needs an Ollama server.
"""
from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import Field

from daz.commands.dispatch import command_prefix
from daz.cytube.events import ChatMessage
from daz.events import MessageSent
from daz.plugins.base import Plugin, PluginConfig, every, on
from daz.plugins.ollama.client import OllamaClient, OllamaFailure
from daz.plugins.ollama.mention import FollowUps, addresses_someone_else, mentions
from daz.plugins.ollama.prompt import (
    ChatHistory,
    Line,
    build_chat,
    clean_reply,
    persona_text,
    room_context,
)
from daz.plugins.ollama.store import ResponseStore, message_hash

GENERATE_TOPIC = "ollama.generate"


class OllamaConfig(PluginConfig):
    """Off unless ``"enabled": true``: it needs an Ollama server."""

    ollama_url: str = Field("http://localhost:11434", description="The Ollama server")
    model: str = Field("gemma3:1b", description="The model to ask")
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds one model call may take")
    temperature: float = Field(0.7, ge=0, le=2, description="The model's temperature")
    max_tokens: int = Field(200, gt=0, le=8192, description="The model's num_predict")
    keep_alive: str = Field("5m", description="How long Ollama keeps the model loaded")
    max_reply_chars: int = Field(300, ge=20, le=2000, description="Longer replies are cut "
                                 "(the outbox splits lines at 320)")
    system_prompt: str = Field("", description="The persona; {bot_name} is replaced; empty: "
                                               "the built-in one")
    aliases: list[str] = Field(default_factory=list, description="Other names the bot answers "
                               "to besides its own")
    bot_name: str = Field("", description="Go key: one more alias")
    ignored_users: list[str] = Field(default_factory=list, description="Never answered (other "
                                     "bots)")
    allowed_channels: list[str] = Field(default_factory=list, description="Channels where it "
                                        "answers; empty: all")
    chat_replies: bool = Field(True, description="Answer in chat; false: only the "
                               "ollama.generate bus request (the greeter's)")
    command_prefix: str | None = Field(None, description="Lines starting with it are commands "
                                       "and never answered; default: core.commands.prefix")
    follow_up_enabled: bool = Field(True, description="Someone the bot just answered may go on "
                                    "without naming it")
    follow_up_window_seconds: float = Field(60.0, ge=0, le=900, description="... for this "
                                            "long after the bot's reply")
    follow_up_max_messages: int = Field(3, ge=0, le=100, description="... for at most this "
                                        "many replies")
    rate_limit_seconds: int = Field(10, ge=0, le=86400, description="Seconds between two "
                                    "replies to one user")
    channel_rate_limit_seconds: int = Field(3, ge=0, le=86400, description="Seconds between "
                                            "two replies in one channel")
    rate_limit_notice: str = Field("", description="Sent once by PM to someone who is rate "
                                   "limited; empty: nothing")
    history_lines: int = Field(20, ge=0, le=200, description="Recent chat lines of the room "
                               "the model sees")
    max_message_age_seconds: float = Field(30.0, gt=0, description="Older lines get no answer")
    max_pending_per_room: int = Field(3, ge=1, le=50, description="Addressed lines waiting per "
                                      "room; more are dropped with a log line")
    generate_concurrency: int = Field(2, ge=1, le=20, description="ollama.generate model calls "
                                      "at once")


class Ollama(Plugin[OllamaConfig]):
    name = "ollama"
    after = ("sql", "retry")
    description = "Answers in chat when addressed by name, using a local Ollama model"
    retry_operations: ClassVar[dict[str, str]] = {"record_reply": "_retry_record_reply"}
    enabled_by_default = False

    async def setup(self) -> None:
        cfg = self.config
        self.client = OllamaClient(host=cfg.ollama_url, model=cfg.model, timeout=cfg.timeout,
                                   temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                   keep_alive=cfg.keep_alive)
        self.store = ResponseStore(self.ctx.db)
        self.history = ChatHistory(cfg.history_lines)
        self.follow_ups = FollowUps(cfg.follow_up_window_seconds if cfg.follow_up_enabled else 0,
                                    cfg.follow_up_max_messages)
        prefix = cfg.command_prefix or command_prefix(self.ctx.app_config)
        self.prefixes = tuple({prefix, "/"})
        self.ignored = {u.lower() for u in cfg.ignored_users}
        self.allowed = {c.lower() for c in cfg.allowed_channels}
        self.stats = {"replies": 0, "failures": 0, "limited": 0, "duplicates": 0, "stale": 0,
                      "busy": 0, "generated": 0}
        self._pending: dict[str, int] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._noticed: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._generate_slots = asyncio.Semaphore(cfg.generate_concurrency)
        self.ctx.bus.respond(GENERATE_TOPIC, self.generate, owner=self.name)
        self._spawn(self._probe(), "ollama:probe")

    async def teardown(self) -> None:
        self.ctx.bus.stop_responding(GENERATE_TOPIC)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()

    async def quiesce(self, timeout: float = 10.0) -> None:
        """Wait until every reply in progress is done (tests and shutdown use this)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self) -> None:
        try:
            models = await self.client.probe()
        except OllamaFailure as exc:
            self.log.warning("ollama: server %s not answering at start (%s); replies will fail "
                             "until it does", self.config.ollama_url, exc.reason)
            return
        if self.config.model not in models:
            self.log.warning("ollama: model %r is not on %s (it has %s)", self.config.model,
                             self.config.ollama_url, ", ".join(models[:10]) or "none")
        else:
            self.log.info("ollama: %s ready with %s", self.config.ollama_url, self.config.model)

    # ------------------------------------------------------------------ chat

    def bot_names(self, room) -> list[str]:
        return [n for n in (room.bot_name, self.config.bot_name, *self.config.aliases) if n]

    @on(MessageSent)
    async def sent(self, event: MessageSent) -> None:
        if event.to is None:  # public lines only: PMs are not part of the room's conversation
            room = self.ctx.rooms.get(event.room_id)
            self.history.add(event.room_id, room.bot_name if room else "", event.text, own=True)

    @on(ChatMessage, max_queue=10_000)
    async def chat(self, event: ChatMessage) -> None:
        room = self.ctx.rooms.get(event.room_id)
        text = event.text.strip()
        if room is None or not event.username or not text or text.startswith(self.prefixes):
            return
        line = self.history.add(event.room_id, event.username, text)
        how = self._addressed(room, event, text)
        if how is None:
            return
        if self._pending.get(room.id, 0) >= self.config.max_pending_per_room:
            self.stats["busy"] += 1
            self.log.warning("ollama: %s: %d replies already waiting; not answering %s",
                             room.channel, self._pending[room.id], event.username)
            return
        self._pending[room.id] = self._pending.get(room.id, 0) + 1
        self._spawn(self._reply(room, event, text, line, by_name=how == "name"),
                    f"ollama:reply:{room.id}")

    def _addressed(self, room, event: ChatMessage, text: str) -> str | None:
        """"name", "follow_up", or None when this line is not for the bot."""
        cfg = self.config
        user = event.username.lower()
        names = self.bot_names(room)
        if (not cfg.chat_replies or user in self.ignored or user.startswith("[")
                or user in {n.lower() for n in names}
                or (self.allowed and room.channel.lower() not in self.allowed)):
            return None
        if mentions(text, names):
            return "name"
        now = self.ctx.clock.time()
        if self.follow_ups.active(room.id, user, now):
            if addresses_someone_else(text, set(room.state.users), names):
                self.follow_ups.close(room.id, user)
                return None
            return "follow_up"
        return None

    async def _reply(self, room, event: ChatMessage, text: str, line: Line | None, *,
                     by_name: bool) -> None:
        try:
            slot = self._slots.setdefault(room.id, asyncio.Semaphore(1))
            async with slot:  # one model call per room at a time; later lines wait their turn
                await self._reply_now(room, event, text, line, by_name=by_name)
        finally:
            self._pending[room.id] -= 1

    async def _reply_now(self, room, event: ChatMessage, text: str, line: Line | None, *,
                         by_name: bool) -> None:
        cfg, user, channel = self.config, event.username, room.channel
        age = self.ctx.clock.time() - event.received_at
        if age > cfg.max_message_age_seconds:
            self.stats["stale"] += 1
            self.log.info("ollama: %s: not answering %s, the line is %.0fs old", channel, user,
                          age)
            return
        digest = message_hash(channel, user, event.msg, event.time)
        try:
            if not await self.store.claim(channel, user, digest, event.time):
                self.stats["duplicates"] += 1
                self.log.info("ollama: %s: %s's line at %d is already being answered",
                              channel, user, event.time)
                return
            limited = await self.store.take_rate_limits(channel, user, cfg.rate_limit_seconds,
                                                        cfg.channel_rate_limit_seconds)
        except Exception as exc:
            # Without the claim two processes could both answer: stay quiet instead.
            self.stats["failures"] += 1
            await self.ctx.log("warning", f"ollama: {channel}: not answering {user}: "
                                          f"database unavailable ({type(exc).__name__}: {exc})")
            return
        if limited:
            await self._limited(room, user, limited)
            return
        history = [h for h in self.history.recent(room.id) if h is not line]
        persona = persona_text(cfg.system_prompt, room.bot_name)
        messages = build_chat(persona, room_context(room, self.ctx.clock.now()), history, user,
                              text)
        try:
            answer = await self.client.chat(messages)
        except OllamaFailure as exc:  # not retried: see the module docstring
            self.stats["failures"] += 1
            await self.ctx.log("warning", f"ollama: {channel}: no reply to {user}: {exc.reason}")
            return
        reply = clean_reply(answer, room.bot_name, cfg.max_reply_chars)
        if not reply:
            self.stats["failures"] += 1
            await self.ctx.log("warning", f"ollama: {channel}: no reply to {user}: the model's "
                                          f"answer was empty after cleaning")
            return
        await room.say(reply, user_input=True)  # the model's text may start with "/"
        self.stats["replies"] += 1
        self._noticed.discard((room.id, user.lower()))
        self.follow_ups.opened(room.id, user, self.ctx.clock.time(), by_name=by_name)
        await self._record(channel, user, digest, event.time, reply)

    async def _limited(self, room, user: str, which: str) -> None:
        self.stats["limited"] += 1
        seconds = (self.config.rate_limit_seconds if which == "user"
                   else self.config.channel_rate_limit_seconds)
        self.log.info("ollama: %s: not answering %s: %s rate limit (one reply per %ds)",
                      room.channel, user, which, seconds)
        key = (room.id, user.lower())
        if which == "user" and self.config.rate_limit_notice and key not in self._noticed:
            self._noticed.add(key)
            # A refusal: by PM, like every other one (README), never in public chat.
            await room.pm(user, self.config.rate_limit_notice)

    async def _record(self, channel: str, user: str, digest: str, message_time: int,
                      reply: str) -> None:
        payload = {"channel": channel, "username": user, "digest": digest,
                   "message_time": message_time, "text": reply}
        try:
            await self.store.record_reply(channel, user, digest, message_time, reply)
        except Exception as exc:
            await self.defer_retry("record_reply", payload, key=f"ollama:{digest}:{message_time}",
                                   error=f"{type(exc).__name__}: {exc}")

    async def _retry_record_reply(self, payload: dict) -> None:
        await self.store.record_reply(payload["channel"], payload["username"], payload["digest"],
                                      int(payload["message_time"]), payload["text"])

    @every(hours=1)
    async def cleanup(self) -> None:
        self.follow_ups.prune(self.ctx.clock.time())
        responses, limits = await self.store.cleanup()
        if responses or limits:
            self.log.info("ollama: cleaned %d old response rows and %d rate-limit rows",
                          responses, limits)

    # ------------------------------------------------------------------ for other plugins

    async def generate(self, payload: dict) -> str:
        """``ollama.generate``: the model's text for another plugin's prompt, or raises."""
        if not isinstance(payload, dict):
            raise ValueError("ollama.generate needs a dict payload")
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("ollama.generate needs a non-empty 'prompt'")
        max_chars = payload.get("max_chars") or self.config.max_reply_chars
        if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
            raise ValueError("ollama.generate: 'max_chars' must be a positive integer")
        channel = payload.get("channel")
        room = self.ctx.rooms.by_channel(channel) if isinstance(channel, str) and channel \
            else None
        bot_name = room.bot_name if room is not None else (self.config.bot_name or "daz")
        system = persona_text(self.config.system_prompt, bot_name)
        if room is not None:
            system += "\n\n" + room_context(room, self.ctx.clock.now()).describe()
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": prompt[:4000]}]
        async with self._generate_slots:
            answer = await self.client.chat(messages)  # OllamaFailure goes to the caller
        text = clean_reply(answer, bot_name, min(max_chars, 2000))
        if not text:
            raise OllamaFailure("the model's answer was empty after cleaning")
        self.stats["generated"] += 1
        self.log.info("ollama: generated %d chars for %s (%s)", len(text),
                      payload.get("purpose") or "unspecified", channel or "no channel")
        return text
