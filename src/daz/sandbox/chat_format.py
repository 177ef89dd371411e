"""How CyTube turns typed text into the ``msg`` it broadcasts, and small JSON helpers.

Facts (a live server's replies and its chat pipeline): the text is cut to the length limit in
UTF-16 code units (JavaScript ``substring``) before escaping; ASCII control characters become a
space unless the channel allows them; text is HTML-escaped (&, <, > — after CyTube's
sanitize-html pass quotes, apostrophes and parentheses come out literal); links are cut out, the
channel's chat filters run over the text between them (cytube/chat_filters.py, the same engine
daz uses to read and to disarm chat), the links go back as ``<a href=… target="_blank"
rel="noopener noreferrer">`` when ``enable_link_regex`` is on, and the sanitizer closes what the
filters left crossed or open, as htmlparser2 does. The sanitizer's tag and attribute allow-list is
not modelled: the default filters and links make only allowed tags, and a test that adds its own
filter gets its tags as written.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable

from daz.cytube.chat_filters import DEFAULT_FILTERS, TAG, ChatFilter, apply_filters, split_links

_CONTROL = re.compile(r"[\x00-\x1f]+")
_LINK_SCHEMES = {"http", "https", "ftp", "mailto", "mumble"}
_VALID_NAME = re.compile(r"[\w-]{1,20}", re.ASCII)
_VALID_CHANNEL = re.compile(r"[\w-]{1,30}", re.ASCII)
LIVE_TYPES = {"li", "tw", "us", "rt", "cu", "im", "jw", "hb", "hl"}


def is_valid_user_name(name: object) -> bool:
    return isinstance(name, str) and _VALID_NAME.fullmatch(name) is not None


def is_valid_channel_name(name: object) -> bool:
    return isinstance(name, str) and _VALID_CHANNEL.fullmatch(name) is not None


def cut_utf16(text: str, limit: int) -> str:
    """The first ``limit`` UTF-16 code units, as JavaScript's substring(0, limit) would keep."""
    if len(text) <= limit // 2:
        return text
    encoded = text.encode("utf-16-le", "surrogatepass")
    if len(encoded) <= 2 * limit:
        return text
    # a surrogate pair cut in half leaves a lone surrogate JS would keep; JSON here cannot
    return encoded[: 2 * limit].decode("utf-16-le", "ignore")


def strip_control(text: str) -> str:
    return _CONTROL.sub(" ", text)


def escape_text(text: str) -> str:
    return html.escape(text, quote=False)


def to_html(text: str, *, convert_links: bool = True,
            filters: Iterable[ChatFilter] = DEFAULT_FILTERS) -> str:
    """The ``msg`` field for typed ``text``: escape, cut links out, filter what lies between
    them, put the links back, sanitize."""
    filters = tuple(filters)
    out: list[str] = []
    for piece, is_link in split_links(escape_text(text)):
        if not is_link:
            out.append(apply_filters(piece, filters))
        elif convert_links:
            out.append(_link(piece))
        else:
            out.append(piece)
    return balance_tags("".join(out))


def _link(escaped_url: str) -> str:
    url = html.unescape(escaped_url)
    scheme = url.split(":", 1)[0].lower()
    href = f' href="{html.escape(url, quote=True)}"' if scheme in _LINK_SCHEMES else ""
    return f'<a{href} target="_blank" rel="noopener noreferrer">{escaped_url}</a>'


_VOID = {"br", "img", "hr", "wbr"}


def balance_tags(markup: str) -> str:
    """What the sanitizer's parser makes of crossed or unclosed tags: a closing tag closes
    everything opened after its element, a closing tag with no open element is dropped, and
    whatever is still open at the end is closed (``<b>a<i>b</b>c</i>`` → ``<b>a<i>b</i></b>c``)."""
    if "<" not in markup:
        return markup
    out: list[str] = []
    open_tags: list[str] = []
    pos = 0
    for match in TAG.finditer(markup):
        out.append(markup[pos:match.start()])
        pos = match.end()
        name = match.group(2).lower()
        if not match.group(1):
            out.append(match.group(0))
            if name not in _VOID:
                open_tags.append(name)
        elif name in open_tags:
            while True:
                top = open_tags.pop()
                out.append(f"</{top}>")
                if top == name:
                    break
    out.append(markup[pos:])
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out)


def js_number(value: float) -> int | float:
    """Numbers as node prints them: 100, not 100.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def format_duration(seconds: float, media_type: str = "") -> str:
    """CyTube's formatTime; live media without a length shows "--:--"."""
    if not seconds or seconds <= 0:
        return "--:--" if media_type in LIVE_TYPES else "00:00"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"
