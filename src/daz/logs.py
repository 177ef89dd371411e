"""How daz writes its log: text for people, or one JSON object per line for a log collector.

Both carry the time with its zone (UTC, as everything in daz). Each line knows the room and the
plugin it came from without every call saying so: a room's tasks and each plugin's bus lanes run
with ``log_context`` set, so a line logged anywhere below them is tagged; a plugin's own logger
(``daz.plugins.<name>``) tags its lines with the plugin as well. A call can add fields of its own
with ``extra={...}``; the JSON form keeps them as keys.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

LOG_FORMATS = ("text", "json")

current_room: contextvars.ContextVar[str | None] = contextvars.ContextVar("daz_room",
                                                                           default=None)
current_plugin: contextvars.ContextVar[str | None] = contextvars.ContextVar("daz_plugin",
                                                                             default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                         "room", "plugin"}
_PLUGIN_LOGGER = "daz.plugins."
# socket.io/engine.io log every packet at INFO; that is noise for a channel owner.
_NOISY = ("socketio", "engineio", "aiohttp.access")


def log_context(*, room: str | None = None, plugin: str | None = None) -> contextvars.Context:
    """A copy of the current context with the room and/or plugin set, for ``create_task(...,
    context=...)``: the task and everything it starts log with those tags. ``room=""`` clears
    a room the caller's context had."""
    context = contextvars.copy_context()
    if room is not None:
        context.run(current_room.set, room)
    if plugin is not None:
        context.run(current_plugin.set, plugin)
    return context


@contextlib.contextmanager
def logging_as(*, room: str | None = None, plugin: str | None = None) -> Iterator[None]:
    """Tag the lines logged inside the block (for code that is not a task of its own)."""
    tokens = []
    if room is not None:
        tokens.append((current_room, current_room.set(room)))
    if plugin is not None:
        tokens.append((current_plugin, current_plugin.set(plugin)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def iso_time(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class _Tagger(logging.Filter):
    """Puts ``room`` and ``plugin`` on every record (from ``extra``, the context, or the logger
    name), so both formatters and any handler a user adds can read them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "room", None) is None:
            record.room = current_room.get() or None  # "": set to "no room" on purpose
        if getattr(record, "plugin", None) is None:
            plugin = current_plugin.get()
            if plugin is None and record.name.startswith(_PLUGIN_LOGGER):
                plugin = record.name[len(_PLUGIN_LOGGER):].split(".", 1)[0]
            record.plugin = plugin
        return True


class TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678+00:00 INFO    daz.app [room/plugin]: message``"""

    def format(self, record: logging.LogRecord) -> str:
        tags = "/".join(t for t in (getattr(record, "room", None),
                                    getattr(record, "plugin", None)) if t)
        line = (f"{iso_time(record.created)} {record.levelname:<7} {record.name}"
                f"{f' [{tags}]' if tags else ''}: {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, room, plugin, message, the ``extra``
    fields, and the traceback as ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "room": getattr(record, "room", None),
            "plugin": getattr(record, "plugin", None),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(verbose: bool = False, log_format: str = "text",
                  stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one that writes ``log_format`` to ``stream``
    (stderr by default); returns that handler."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_Tagger())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # asyncpg's pool logs each failed reconnect during an outage with a traceback; the reason
    # on one line says all a channel owner can act on (and /health says it too).
    for name in ("asyncpg", "asyncpg.pool"):  # a filter sees only its own logger's records
        logger = logging.getLogger(name)
        if _one_line not in logger.filters:
            logger.addFilter(_one_line)
    return handler


def _one_line(record: logging.LogRecord) -> bool:
    if record.exc_info and record.levelno < logging.ERROR:
        exc = record.exc_info[1]
        record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True
