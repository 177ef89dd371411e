"""Shaping the text we send to CyTube: line length, splitting, and keeping user text from running
chat commands.

* Text is cut to 320 (UTF-16 units, as the server counts) on word boundaries, a few chunks at
  most, the last one ending in an ellipsis when more was cut.
* Text that may carry user input never starts with "/": the server would run it as a chat command
  such as /kick or /clear.
"""
from __future__ import annotations

MAX_LENGTH = 320  # the server's max-chat-message-length
MAX_CHUNKS = 5
ELLIPSIS = "…"
# Invisible, not trimmed by JavaScript's String.prototype.trim (U+FEFF and spaces are), so the
# server's `msg.indexOf("/") === 0` command check can never match.
SLASH_GUARD = "\u200b"


def utf16_len(text: str) -> int:
    """Length as JavaScript counts it (the server truncates by this)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _cut_utf16(text: str, limit: int) -> str:
    """Longest prefix of ``text`` whose UTF-16 length is <= limit."""
    if utf16_len(text) <= limit:
        return text
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            return text[:i]
    return text


def _clean(text: str) -> str:
    # The server turns control characters into spaces anyway; doing it here keeps our length
    # arithmetic and echo matching exact, and removes NUL bytes early.
    return "".join(" " if (ord(ch) < 0x20 and ch != "\n") or ch == "\x7f" else ch for ch in text)


def split_text(text: str, *, max_length: int = MAX_LENGTH, max_chunks: int = MAX_CHUNKS,
               ellipsis: str = ELLIPSIS) -> list[str]:
    """Lines of at most ``max_length``: newlines start a new message, long lines break at the
    last space before the limit (mid-word only when a word is longer than a whole line). At most
    ``max_chunks``; when more text remains the last chunk ends with ``ellipsis``."""
    max_length = max(2, max_length)
    chunks: list[str] = []
    truncated = False
    for line in _clean(text).split("\n"):
        line = line.strip()
        while line:
            if len(chunks) == max_chunks:
                truncated = True
                break
            head = _cut_utf16(line, max_length)
            if len(head) < len(line):
                space = head.rfind(" ")
                if space > 0:
                    head = head[:space]
            chunks.append(head.rstrip())
            line = line[len(head):].lstrip()
        if truncated:
            break
    if truncated and chunks:
        last = _cut_utf16(chunks[-1], max_length - utf16_len(ellipsis))
        if len(last) < len(chunks[-1]):
            space = last.rfind(" ")
            if space > 0:
                last = last[:space]
        chunks[-1] = last.rstrip() + ellipsis
    return [c for c in chunks if c]


def neutralise_command(text: str) -> str:
    """Text that CyTube will not run as a chat command (/kick, /clear, /afk, ...)."""
    stripped = text.lstrip()
    if stripped.startswith("/"):
        return SLASH_GUARD + stripped
    return text


def comparable_text(text: str) -> str:
    """Comparable form of a line we sent and of its echo's unescaped text."""
    return " ".join(text.replace(SLASH_GUARD, "").split())
