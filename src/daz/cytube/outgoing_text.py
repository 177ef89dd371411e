"""Shaping the text we send to CyTube: line length, splitting, chat filters, and keeping user text
from running chat commands. Every line daz sends passes ``outgoing_lines`` (from the Outbox).

* Text is cut to 320 (UTF-16 units, as the server counts) on word boundaries, a few chunks at
  most, the last one ending in an ellipsis when more was cut.
* The server runs the channel's chat filters over our lines too: ``cool_guy_99``
  would read ``cool<em>guy</em>99``. ``disarm_filters`` runs the default filters over the line
  with the engine the fake server uses and, for each match, breaks its opening marker: a
  one-character marker becomes a look-alike that no filter knows (``*`` ∗, ``_`` ˍ, backtick ˋ),
  a longer one (``~~``, ``[sp]``) gets a zero-width space after its first character. Only markers
  that would pair are touched; links are left alone because the server cuts them out before
  filtering. Escaping cannot make or hide a marker (entities hold none), so matching the raw line
  finds exactly the matches the server finds in the escaped one.
* Text that may carry user input never starts with "/": the server would run it as a chat command
  such as /kick or /clear.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from daz.cytube.chat_filters import DEFAULT_FILTERS, ChatFilter, split_links

MAX_LENGTH = 320  # the server's max-chat-message-length
MAX_CHUNKS = 5
ELLIPSIS = "…"
# Invisible, not trimmed by JavaScript's String.prototype.trim (U+FEFF and spaces are), so the
# server's `msg.indexOf("/") === 0` command check can never match.
ZERO_WIDTH_SPACE = "\u200b"
SLASH_GUARD = ZERO_WIDTH_SPACE
# Look the same as the default filters' one-character markers; no filter pairs them.
LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "`": "\u02cb"}


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
               ellipsis: str = ELLIPSIS,
               finish: Callable[[str], str] | None = None) -> list[str]:
    """Lines of at most ``max_length``: newlines start a new message, long lines break at the
    last space before the limit (mid-word only when a word is longer than a whole line). At most
    ``max_chunks``; when more text remains the last chunk ends with ``ellipsis``. ``finish``
    turns each chunk into the line that is sent (it may lengthen it); the sent line fits."""
    max_length = max(2, max_length)
    chunks: list[str] = []
    truncated = False
    for line in _clean(text).split("\n"):
        line = line.strip()
        while line:
            if len(chunks) == max_chunks:
                truncated = True
                break
            taken, sent = _fitting_head(line, max_length, finish)
            chunks.append(sent)
            line = line[taken:].lstrip()
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


def _fitting_head(line: str, max_length: int,
                  finish: Callable[[str], str] | None) -> tuple[int, str]:
    """(characters of ``line`` taken, the line to send) for the longest head that fits once
    finished; a head that finishing lengthens past the limit is shortened by bisection."""
    taken, sent = _head(line, max_length, finish)
    if utf16_len(sent) <= max_length:
        return taken, sent
    low, high = 1, max_length - 1
    best = _head(line, 1, finish)
    while low <= high:
        budget = (low + high) // 2
        taken, sent = _head(line, budget, finish)
        if utf16_len(sent) <= max_length:
            best, low = (taken, sent), budget + 1
        else:
            high = budget - 1
    return best


def _head(line: str, budget: int, finish: Callable[[str], str] | None) -> tuple[int, str]:
    head = _cut_utf16(line, budget)
    if len(head) < len(line):
        space = head.rfind(" ")
        if space > 0:
            head = head[:space]
    sent = head.rstrip()
    return len(head), finish(sent) if finish is not None else sent


def outgoing_lines(text: str, *, user_input: bool = True, max_length: int = MAX_LENGTH,
                   max_chunks: int = MAX_CHUNKS) -> list[str]:
    """The lines to send for ``text``, each as the room should read it."""
    return split_text(text, max_length=max_length, max_chunks=max_chunks,
                      finish=lambda chunk: outgoing_line(chunk, user_input=user_input))


def outgoing_line(chunk: str, *, user_input: bool = True) -> str:
    if not user_input and chunk.startswith("/"):
        # A chat command daz means to run: its arguments (a name to /kick) must stay exact.
        return chunk
    line = disarm_filters(chunk)
    return neutralise_command(line) if user_input else line


def disarm_filters(text: str, filters: Iterable[ChatFilter] = DEFAULT_FILTERS) -> str:
    """``text`` changed just enough that none of ``filters`` matches outside its links, and so
    that it reads the same (see the module docstring)."""
    active = [f for f in filters if f.active]
    if not active:
        return text
    return "".join(piece if is_link else _disarm(piece, active)
                   for piece, is_link in split_links(text))


def _disarm(piece: str, filters: list[ChatFilter]) -> str:
    # Each round removes a marker or splits one, so the default filters run out of matches;
    # the cap only stops a channel-made pattern that cannot be broken this way.
    for _ in range(2 * len(piece) + 2):
        for chat_filter in filters:
            match = chat_filter.regex.search(piece)
            if match is not None:
                piece = _break_marker(piece, match.start())
                break
        else:
            break
    return piece


def _break_marker(piece: str, at: int) -> str:
    lookalike = LOOKALIKES.get(piece[at])
    if lookalike is not None:
        return piece[:at] + lookalike + piece[at + 1:]
    return piece[:at + 1] + ZERO_WIDTH_SPACE + piece[at + 1:]


def meant_text(shown: str) -> str:
    """What daz meant, from what the room reads of one of its lines (look-alikes and zero-width
    spaces undone): for checking that a line reads as meant."""
    for marker, lookalike in LOOKALIKES.items():
        shown = shown.replace(lookalike, marker)
    return shown.replace(ZERO_WIDTH_SPACE, "")


def neutralise_command(text: str) -> str:
    """Text that CyTube will not run as a chat command (/kick, /clear, /afk, ...)."""
    stripped = text.lstrip()
    if stripped.startswith("/"):
        return SLASH_GUARD + stripped
    return text


def comparable_text(text: str) -> str:
    """Comparable form of a line we sent and of its echo's unescaped text."""
    return " ".join(text.replace(SLASH_GUARD, "").split())
