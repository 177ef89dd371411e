"""Making text storable: what PostgreSQL refuses in ``text``/``varchar`` columns.

NUL (U+0000) cannot be stored, and lone surrogates (U+D800..U+DFFF, which Python's JSON decoder
makes from an unpaired ``\\ud83d`` escape) cannot be encoded as UTF-8. Either one in a batched
write fails the whole batch, so every writer cleans its text here before it queues it.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

NAME_LIMIT = 255  # the widest name column of the Go schema (varchar(255))

# Public: clean_json looks for it in already-encoded JSON text.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Built once: json.dumps() with keyword arguments builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def clean_text(value: Any, width: int | None = None) -> str:
    """Text PostgreSQL accepts: NUL and lone surrogates replaced by U+FFFD (so it is visible
    that something was there), cut to ``width`` characters."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    if value.isascii():  # the common case: no surrogates possible, only NUL to look for
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
    elif UNSTORABLE.search(value):
        value = UNSTORABLE.sub("\ufffd", value)
    if width is not None and len(value) > width:
        value = value[:width]
    return value


def storable_name(name: object) -> bool:
    """Can this user name go into a batched write as it is? CyTube names are 1-20 word
    characters; an empty, endless or unencodable one only comes from a broken or hostile server
    and would make the whole batch unwritable, so it is left out rather than cleaned (a cleaned
    name would count under somebody who does not exist)."""
    return (isinstance(name, str) and 0 < len(name) <= NAME_LIMIT
            and clean_text(name) == name)


def _storable(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 200:
        return clean_text(repr(value)[:1000])
    if isinstance(value, dict):
        return {clean_text(k): _storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v, depth + 1) for v in value]
    return clean_text(str(value))


def clean_json(value: Any) -> str:
    """``value`` as JSON text that jsonb accepts: ``\\u0000`` and lone surrogates replaced as in
    text, NaN and Infinity (which jsonb refuses) as null."""
    try:
        text = _JSON.encode(value)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and "\\u0000" not in text and not UNSTORABLE.search(text):
        return text
    try:
        return _JSON.encode(_storable(value))
    except (TypeError, ValueError, RecursionError):
        return json.dumps({"unstorable_payload": clean_text(repr(value)[:10_000])})
