"""Is a chat line meant for the bot? Whole-word name matches and per-user follow-up windows.

Fuzzy matching answered ordinary words that look like the name (the Go bot did:
docs/upgrading-from-go.md, "Chat replies"). A line addresses the bot only when the bot's name
or a configured alias appears as a whole word, in any case:
"daz?", "@daz", "hey DAZ," and "daz's" do; "dazzling", "dazed" and "daz_fan" do not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# A "word" character is what CyTube allows in names ([\w-]); a name is a whole word when the
# characters around it are not those.
_NAME_EDGE_BEFORE = r"(?<![\w-])"
_NAME_EDGE_AFTER = r"(?![\w-])"


@lru_cache(maxsize=64)  # every chat line asks; the names change only on a rename
def name_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any of the names as a whole word."""
    cleaned = sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(re.escape(n) for n in cleaned)
    return re.compile(f"{_NAME_EDGE_BEFORE}@?(?:{alternatives}){_NAME_EDGE_AFTER}", re.IGNORECASE)


def mentions(text: str, names: list[str]) -> bool:
    pattern = name_pattern(tuple(names))
    return bool(pattern and pattern.search(text))


_LEADING_ADDRESS = re.compile(r"^\s*@?([\w-]{1,40})\s*[:,]")
_AT_NAME = re.compile(r"(?<![\w-])@([\w-]{1,40})")


def addresses_someone_else(text: str, present: set[str], bot_names: list[str]) -> bool:
    """True when the line is plainly aimed at another person in the room ("bob: ..." or "@bob").

    Used only for follow-ups: a user who was talking to the bot and turns to someone else should
    not get an answer from the bot.
    """
    ours = {n.lower() for n in bot_names}
    candidates = []
    lead = _LEADING_ADDRESS.match(text)
    if lead:
        candidates.append(lead.group(1))
    candidates.extend(_AT_NAME.findall(text))
    return any(c.lower() in present and c.lower() not in ours for c in candidates)


@dataclass
class _Window:
    opened_at: float
    turns: int = 0


class FollowUps:
    """After the bot answers someone, that person may go on talking to it without its name.

    A window is keyed by (room, lower-cased user), lasts ``seconds`` from the bot's last reply to
    them, and allows ``max_turns`` replies without the name; naming the bot starts afresh.
    """

    def __init__(self, seconds: float, max_turns: int):
        self.seconds = seconds
        self.max_turns = max_turns
        self._windows: dict[tuple[str, str], _Window] = {}

    def opened(self, room_id: str, user: str, now: float, *, by_name: bool) -> None:
        """The bot just answered ``user``; ``by_name`` when that line named the bot."""
        if self.seconds <= 0 or self.max_turns <= 0:
            return
        key = (room_id, user.lower())
        window = self._windows.get(key)
        if by_name or window is None:
            self._windows[key] = _Window(opened_at=now)
        else:
            window.opened_at = now
            window.turns += 1
            if window.turns >= self.max_turns:
                del self._windows[key]

    def active(self, room_id: str, user: str, now: float) -> bool:
        key = (room_id, user.lower())
        window = self._windows.get(key)
        if window is None:
            return False
        if now - window.opened_at > self.seconds:
            del self._windows[key]
            return False
        return True

    def close(self, room_id: str, user: str) -> None:
        self._windows.pop((room_id, user.lower()), None)

    def prune(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if now - w.opened_at > self.seconds]:
            del self._windows[key]
