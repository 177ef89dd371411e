"""What is left in memory at shutdown, kept in a file of JSON lines until the next start.

Held writes (``held.py``) and the retry plugin's pending operations both save what the database
could not take when daz stops, and take it back (removing the file) when it starts again. One
JSON document per line, appended, so an earlier run's leftovers are kept and the order is too.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from daz.private_files import open_private

T = TypeVar("T")


def append_json_lines(path: Path, items: Iterable[Any]) -> None:
    """Append each item as one JSON line."""
    with open_private(path, "a") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")


def take_json_lines(path: Path | None, parse: Callable[[Any], T], *, log: logging.Logger,
                    owner: str) -> list[T]:
    """Read the items a previous run saved (each through ``parse``) and remove the file. A line
    that is not JSON, or that ``parse`` refuses (ValueError, KeyError, TypeError), is logged and
    skipped: one bad line must not cost the others."""
    if path is None or not path.exists():
        return []
    out: list[T] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            log.error("%s: unreadable line in %s skipped", owner, path)
    path.unlink()
    return out
