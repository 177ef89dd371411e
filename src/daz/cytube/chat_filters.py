"""CyTube's chat filters, as one engine for the three places that need them: the fake server
applies them (sandbox/chat_format.py), incoming chat is turned back into what the person typed
(``typed_text``), and outgoing lines are disarmed so the room reads what daz meant
(cytube/outgoing_text.py).

Facts (as a live CyTube server behaves): every new channel filters chat and PMs. The server escapes
the typed text, cuts out every link so no filter touches it, runs the channel's filters over the
text between the links, puts the links back (as ``<a>`` when ``enable_link_regex`` is on) and
finally sanitizes the HTML. A filter is a JavaScript regular expression (``source`` and
``flags``: "g" replaces every match, "i" ignores case) and a replacement in which ``\\1`` names a
group. ``compile_js`` gives Python the JavaScript meaning: ``.`` never matches a line
terminator (\\n, \\r, U+2028, U+2029) and ``$`` is the end of the text only.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# CyTube's link pattern, run on the escaped text; links are what no default filter may touch.
LINK = re.compile(r"(\w+://(?:[^:/\[\]\s]+|\[[0-9a-f:]+\])(?::\d+)?(?:/[^/\s]*)*)", re.I)
_JS_DOT = "[^\\n\\r\\u2028\\u2029]"
_GROUP_REF = re.compile(r"\\(\d)")


def compile_js(source: str, flags: str = "") -> re.Pattern[str]:
    """``source`` compiled with JavaScript's meaning (ValueError when Python cannot).

    An all-ASCII pattern is compiled ASCII-only: JavaScript's ``\\w``, ``\\d`` and ``\\b`` are
    ASCII, and its case folding never maps a non-ASCII letter (the long s, the Kelvin sign) onto
    an ASCII one, as Python's Unicode folding would.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\" and i + 1 < len(source):
            out.append(source[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif source.startswith("[]", i):  # JavaScript: matches nothing; Python: an error
            out.append("(?!)")
            i += 2
            continue
        elif source.startswith("[^]", i):  # JavaScript: any character at all
            out.append("(?s:.)")
            i += 3
            continue
        elif ch == "[":
            in_class = True
        elif ch == "." and "s" not in flags:
            ch = _JS_DOT
        elif ch == "$" and "m" not in flags:
            ch = r"\Z"
        out.append(ch)
        i += 1
    mode = 0
    if "i" in flags:
        mode |= re.IGNORECASE
    if "m" in flags:
        mode |= re.MULTILINE
    if "s" in flags:
        mode |= re.DOTALL
    if source.isascii():
        mode |= re.ASCII
    try:
        return re.compile("".join(out), mode)
    except re.error as exc:
        raise ValueError(f"not a usable filter pattern {source!r}: {exc}") from None


@dataclass(frozen=True)
class ChatFilter:
    """One of a channel's filters, in CyTube's own shape (``payload``)."""

    name: str
    source: str
    flags: str
    replace: str
    active: bool = True
    filterlinks: bool = False
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_js(self.source, self.flags))

    @classmethod
    def from_payload(cls, data: Any) -> ChatFilter:
        """A filter from CyTube's JSON shape; ValueError says what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError("a filter is an object")
        name, source = data.get("name"), data.get("source")
        flags, replace = data.get("flags", ""), data.get("replace", "")
        if not isinstance(name, str) or not name:
            raise ValueError("a filter needs a name")
        if not isinstance(source, str) or not source:
            raise ValueError(f"filter {name!r} needs a source pattern")
        if not isinstance(flags, str) or set(flags) - set("gims"):
            raise ValueError(f"filter {name!r}: flags may only be g, i, m, s")
        if not isinstance(replace, str):
            raise ValueError(f"filter {name!r}: replace must be text")
        return cls(name, source, flags, replace, bool(data.get("active", True)),
                   bool(data.get("filterlinks", False)))

    def payload(self) -> dict:
        return {"name": self.name, "source": self.source, "flags": self.flags,
                "replace": self.replace, "active": self.active, "filterlinks": self.filterlinks}

    def apply(self, text: str) -> str:
        template = self.replace

        def expand(match: re.Match[str]) -> str:
            def group(ref: re.Match[str]) -> str:
                index = int(ref.group(1))
                if index > (self.regex.groups or 0):
                    return ref.group(0)
                return match.group(index) or ""
            return _GROUP_REF.sub(group, template)

        return self.regex.sub(expand, text, count=0 if "g" in self.flags else 1)


DEFAULT_FILTERS: tuple[ChatFilter, ...] = (
    ChatFilter("monospace", "`(.+?)`", "g", "<code>\\1</code>"),
    ChatFilter("bold", "\\*(.+?)\\*", "g", "<strong>\\1</strong>"),
    ChatFilter("italic", "_(.+?)_", "g", "<em>\\1</em>"),
    ChatFilter("strike", "~~(.+?)~~", "g", "<s>\\1</s>"),
    ChatFilter("inline spoiler", "\\[sp\\](.*?)\\[\\/sp\\]", "ig",
               "<span class=\"spoiler\">\\1</span>"),
)


def apply_filters(text: str, filters: Iterable[ChatFilter]) -> str:
    """The active filters, in their order, over text that holds no link."""
    for chat_filter in filters:
        if chat_filter.active:
            text = chat_filter.apply(text)
    return text


def split_links(text: str) -> Iterator[tuple[str, bool]]:
    """(piece, is_link) in order; the server cuts links out before filtering."""
    pos = 0
    for match in LINK.finditer(text):
        if match.start() > pos:
            yield text[pos:match.start()], False
        yield match.group(0), True
        pos = match.end()
    if pos < len(text) or not text:
        yield text[pos:], False


# ---------------------------------------------------------------------- back to the typed text

TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)([^>]*)>")  # (closing, name, attributes)
_SPOILER_CLASS = re.compile(r"""\bclass\s*=\s*["']?spoiler\b""", re.I)
# What each default filter's tag was made from; any other tag (a link, a channel's own filter)
# leaves only its text.
_MARKERS = {"code": ("`", "`"), "strong": ("*", "*"), "em": ("_", "_"), "s": ("~~", "~~")}
_SPOILER = ("[sp]", "[/sp]")


def shown_text(message: str) -> str:
    """The text a viewer reads in ``msg``: every tag dropped (its formatting is not text),
    entities unescaped."""
    if "<" in message:
        message = TAG.sub("", message)
    if "&" in message:
        message = html.unescape(message)
    return message


def typed_text(message: str) -> str:
    """What a person typed, from the ``msg`` the server built: the default filters' tags back
    into the characters that made them, a link back into its URL, entities unescaped.

    Exact whenever the filters' output was well nested (the sanitizer repairs crossed pairs
    such as ``*a_b*c_``, and what it drops cannot be recovered); an inline spoiler comes back
    as ``[sp]…[/sp]`` in lower case.
    """
    if "<" in message:
        message = _untag(message)
    if "&" in message:
        message = html.unescape(message)
    return message


def _untag(message: str) -> str:
    open_tags: list[str] = []

    def marker(match: re.Match[str]) -> str:
        closing, name, attributes = match.group(1), match.group(2).lower(), match.group(3)
        if name == "span" and not closing:
            name = "spoiler" if _SPOILER_CLASS.search(attributes) else "span"
        if not closing:
            open_tags.append(name)
            return _SPOILER[0] if name == "spoiler" else _MARKERS.get(name, ("", ""))[0]
        if name == "span" and open_tags and open_tags[-1] in ("span", "spoiler"):
            name = open_tags[-1]
        if name in open_tags:
            while open_tags.pop() != name:
                pass
        return _SPOILER[1] if name == "spoiler" else _MARKERS.get(name, ("", ""))[1]

    return TAG.sub(marker, message)
