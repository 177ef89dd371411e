"""Outbox: the ordered, rate-limited queue of chat lines and PMs for one room.

Pure logic, no sockets and no sleeping: every method takes ``now`` (monotonic seconds), so the
schedule can be tested with a fake clock. The room's outbox pump (outbox_pump.py) drives it: it
asks ``delay(now)``, waits, ``pop(now)``s one message, emits it, and feeds back what the server
says (our own echo, a ``cooldown``, a failed PM).

Why it looks like this (what a live CyTube server does with a bot's chat):

* The server's limiter (per socket, chat and PMs share it) is not a token bucket: after
  ``cooldown`` seconds of quiet up to ``burst`` lines pass at once, beyond that one line per
  ``1/sustained`` seconds after the last one that passed, and the burst only comes back after
  another quiet ``cooldown``. Defaults burst 20, 10/s, cooldown 2 s for everyone; the channel's
  ``chat_antiflood_params`` for rank < 2 when ``chat_antiflood`` is on. A line over the limit is
  silently dropped and we get ``cooldown <ms>``. We follow the same rule with 75 % of the burst,
  80 % of the rate and a longer quiet period, so we stay under it.
* Each line we send gets exactly one answer, in order: its echo (the server broadcasts chat to
  the sender too, and sends PMs to both sides) or a ``cooldown``. So the oldest line still waiting
  for an answer when a ``cooldown`` arrives is the one the server dropped: it goes back to the
  front of the queue. Nothing is lost and nothing is sent twice.
* Text is cut and guarded before it is queued (outgoing_text.py): 320 UTF-16 units a line,
  the default chat filters disarmed so the room reads what we meant, and text that may carry
  user input never starts with "/".
"""
from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from daz.cytube.outgoing_text import MAX_CHUNKS, MAX_LENGTH, comparable_text, outgoing_lines

log = logging.getLogger(__name__)

MAX_QUEUE = 200
SERVER_BURST, SERVER_RATE = 20, 10.0  # MIN_ANTIFLOOD, applies to everyone
ECHO_TIMEOUT = 10.0  # a line with no answer after this long is taken as delivered


def safe_limits(burst: int, rate: float,
                cooldown: float | None = None) -> tuple[int, float, float]:
    """(burst, rate/s, quiet seconds) for a server limit of (burst, rate/s, cooldown s):
    comfortably under it. The server's cooldown defaults to burst/rate."""
    rate = max(0.05, float(rate))
    if cooldown is None or cooldown != cooldown or cooldown <= 0:
        cooldown = burst / rate
    return (max(1, math.floor(burst * 0.75)), max(0.05, rate * 0.8),
            min(120.0, float(cooldown) * 1.25 + 0.25))


@dataclass(slots=True)
class Outgoing:
    text: str
    to: str | None = None  # PM recipient; None for public chat
    queued_at: float = 0.0
    sent_at: float = 0.0
    attempts: int = 0
    expects_echo: bool = True
    match_text: str = field(default="", repr=False)
    order: int = 0  # position in the room's send order; a resent line goes back to its place

    @property
    def kind(self) -> str:
        return "pm" if self.to is not None else "chat"


class Outbox:
    def __init__(self, *, max_queue: int = MAX_QUEUE, max_length: int = MAX_LENGTH,
                 max_chunks: int = MAX_CHUNKS, burst: int | None = None,
                 rate: float | None = None, on_drop: Callable[[Outgoing], None] | None = None,
                 room: str = "") -> None:
        default_burst, default_rate, default_quiet = safe_limits(SERVER_BURST, SERVER_RATE)
        self.max_queue = max(1, max_queue)
        self.max_length = max_length
        self.max_chunks = max_chunks
        self.burst = burst or default_burst
        self.rate = rate or default_rate
        self.quiet = default_quiet
        self._count = 0  # lines sent since the last quiet period
        self._last_sent: float | None = None
        self.paused_until = 0.0
        self.queue: collections.deque[Outgoing] = collections.deque()
        self.in_flight: collections.deque[Outgoing] = collections.deque()
        self.on_drop = on_drop
        self.room = room
        self.dropped = 0
        self.sent = 0
        self.resent = 0
        self._order = 0

    # ------------------------------------------------------------------ adding

    def put_chat(self, text: str, *, user_input: bool = True, now: float = 0.0) -> int:
        return self._put(text, None, user_input, now)

    def put_pm(self, to: str, text: str, *, user_input: bool = True, now: float = 0.0) -> int:
        return self._put(text, to, user_input, now)

    def _put(self, text: str, to: str | None, user_input: bool, now: float) -> int:
        if not isinstance(text, str):
            text = str(text)
        chunks = outgoing_lines(text, user_input=user_input, max_length=self.max_length,
                                max_chunks=self.max_chunks)
        for chunk in chunks:
            # A raw "/command" (user_input=False) is consumed by the server without an echo.
            expects_echo = not chunk.startswith("/")
            self._append(Outgoing(text=chunk, to=to, queued_at=now, expects_echo=expects_echo,
                                  match_text=comparable_text(chunk)))
        return len(chunks)

    def _append(self, message: Outgoing) -> None:
        self._order += 1
        message.order = self._order
        if len(self.queue) >= self.max_queue:
            oldest = self.queue.popleft()
            self._dropped(oldest, "the outbox is full")
        self.queue.append(message)

    def _dropped(self, message: Outgoing, why: str) -> None:
        self.dropped += 1
        log.warning("outbox %s: dropped a %s%s (%s): %.60r", self.room, message.kind,
                    f" to {message.to}" if message.to else "", why, message.text)
        if self.on_drop is not None:
            self.on_drop(message)

    def clear(self, why: str) -> int:
        """Drop everything still queued (room stopped or gave up); returns how many."""
        n = 0
        while self.queue:
            self._dropped(self.queue.popleft(), why)
            n += 1
        return n

    @property
    def depth(self) -> int:
        return len(self.queue)

    # ------------------------------------------------------------------ rate

    def set_limits(self, burst: int, rate: float, quiet: float | None = None) -> None:
        """Burst, rate/s and quiet period (already made safe by the caller)."""
        self.burst = max(1, int(burst))
        self.rate = max(0.05, float(rate))
        if quiet is not None:
            self.quiet = max(0.0, float(quiet))

    def _bursting(self, now: float) -> bool:
        """True when the server's counter has restarted (quiet long enough since our last)."""
        return self._last_sent is None or now - self._last_sent >= self.quiet

    def delay(self, now: float) -> float | None:
        """None when nothing is queued; else seconds until the next message may go (0: now)."""
        if not self.queue:
            return None
        wait = max(0.0, self.paused_until - now)
        last = self._last_sent
        if last is not None and not self._bursting(now) and self._count >= self.burst:
            wait = max(wait, last + 1.0 / self.rate - now)
        return wait

    def pop(self, now: float) -> Outgoing:
        """Take the next message to emit now (call only when ``delay(now) == 0``)."""
        if self._bursting(now):
            self._count = 0
        self._count += 1
        self._last_sent = now
        message = self.queue.popleft()
        message.sent_at = now
        message.attempts += 1
        self.in_flight.append(message)
        self.sent += 1
        return message

    def unsent(self, message: Outgoing) -> None:
        """The emit failed (socket went away): put it back first, refund nothing."""
        try:
            self.in_flight.remove(message)
        except ValueError:
            pass
        self._requeue([message])
        self.resent -= 1  # never reached the server: not a resend

    # ------------------------------------------------------------------ server feedback

    def echo(self, kind: str, text: str, now: float) -> Outgoing | None:
        """The server delivered one of our lines (we saw our own chatMsg/pm; ``text`` is the
        event's unescaped ``text``).

        Answers come in send order, so every line sent before the matching one has had its
        answer already and leaves the in-flight list too.
        """
        self.expire(now)
        wanted = comparable_text(text)
        for i, message in enumerate(self.in_flight):
            if message.kind == kind and message.match_text == wanted:
                for _ in range(i + 1):
                    self.in_flight.popleft()
                return message
        # Changed on the way (a chat filter, an emote): take the oldest of that kind.
        for i, message in enumerate(self.in_flight):
            if message.kind == kind and message.expects_echo:
                for _ in range(i + 1):
                    self.in_flight.popleft()
                return message
        return None

    def cooldown(self, milliseconds: float, now: float) -> Outgoing | None:
        """The server dropped our oldest unanswered line; pause and send it again first."""
        self.expire(now)
        seconds = max(0.0, min(float(milliseconds), 60_000.0)) / 1000
        self.paused_until = max(self.paused_until, now + seconds + 0.05)
        # We overran: no burst until a full quiet period has passed.
        self._count = max(self._count, self.burst)
        self._last_sent = now
        if not self.in_flight:
            return None
        message = self.in_flight.popleft()
        self._requeue([message])
        return message

    def failed(self, kind: str, now: float) -> Outgoing | None:
        """The server refused our oldest unanswered line of ``kind`` (e.g. "PM failed: ...")."""
        self.expire(now)
        for message in self.in_flight:
            if message.kind == kind:
                self.in_flight.remove(message)
                return message
        return None

    def expire(self, now: float) -> None:
        while self.in_flight and now - self.in_flight[0].sent_at > ECHO_TIMEOUT:
            self.in_flight.popleft()

    def requeue_in_flight(self) -> int:
        """The socket dropped: lines still unanswered may never have arrived; send them again
        after reconnecting (at-least-once: a line can repeat only if its echo was lost too)."""
        messages = list(self.in_flight)
        self.in_flight.clear()
        self._requeue(messages)
        return len(messages)

    def _requeue(self, messages: list[Outgoing]) -> None:
        """Put lines back at their place in the send order (several cooldowns in a row must
        not reverse them)."""
        for message in messages:
            self.sent -= 1
            self.resent += 1
            index = next((i for i, queued in enumerate(self.queue)
                          if queued.order > message.order), len(self.queue))
            self.queue.insert(index, message)
        while len(self.queue) > self.max_queue:
            self._dropped(self.queue.pop(), "the outbox is full")
