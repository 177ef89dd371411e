"""How CyTube turns typed text into the ``msg`` it broadcasts, and small JSON helpers.

Facts (captures §5-6 and the server's chat pipeline): the text is cut to the length limit in
UTF-16 code units (JavaScript ``substring``) before escaping; ASCII control characters become a
space unless the channel allows them; text is HTML-escaped (&, <, > — after CyTube's
sanitize-html pass quotes, apostrophes and parentheses come out literal); URLs become
``<a href=… target="_blank" rel="noopener noreferrer">`` links when ``enable_link_regex`` is on.
"""
from __future__ import annotations

import html
import re

LINK = re.compile(r"(\w+://(?:[^:/\[\]\s]+|\[[0-9a-f:]+\])(?::\d+)?(?:/[^/\s]*)*)", re.I)
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


def to_html(text: str, *, convert_links: bool = True) -> str:
    """The ``msg`` field for typed ``text``."""
    if not convert_links:
        return escape_text(text)
    out: list[str] = []
    pos = 0
    for match in LINK.finditer(text):
        out.append(escape_text(text[pos:match.start()]))
        out.append(_link(match.group(1)))
        pos = match.end()
    out.append(escape_text(text[pos:]))
    return "".join(out)


def _link(url: str) -> str:
    scheme = url.split(":", 1)[0].lower()
    href = f' href="{html.escape(url, quote=True)}"' if scheme in _LINK_SCHEMES else ""
    return (f'<a{href} target="_blank" rel="noopener noreferrer">'
            f"{escape_text(url)}</a>")


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
