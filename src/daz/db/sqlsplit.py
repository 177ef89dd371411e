"""Split a SQL script into statements, the way psql would.

Migrations run statement by statement so that a failure can name the statement that failed.
Semicolons inside quotes, quoted identifiers, comments and dollar-quoted bodies
(``$$ ... $$``, ``$fn$ ... $fn$``) do not end a statement.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the statement's first character in the file

    def summary(self, width: int = 160) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= width else flat[: width - 3] + "..."


def split_sql(script: str) -> list[Statement]:
    """Statements without their trailing semicolon; comment-only pieces are dropped."""
    out: list[Statement] = []
    n = len(script)
    i = 0
    has_code = False  # anything but whitespace and comments since ``start``
    code_start = 0

    def flush(end: int) -> None:
        nonlocal has_code
        if has_code:
            text = script[code_start:end].strip()
            if text:
                out.append(Statement(text, script.count("\n", 0, code_start) + 1))
        has_code = False

    def mark_code(pos: int) -> None:
        nonlocal has_code, code_start
        if not has_code:
            has_code = True
            code_start = pos

    while i < n:
        c = script[i]
        nxt = script[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if script.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif script.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        if c == ";":
            flush(i)
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        mark_code(i)
        if c == "'":
            escapes = i > 0 and script[i - 1] in "eE" and (i < 2 or not _ident_char(script[i - 2]))
            i = _skip_quoted(script, i + 1, "'", backslash=escapes)
        elif c == '"':
            i = _skip_quoted(script, i + 1, '"', backslash=False)
        elif c == "$" and (i == 0 or not _ident_char(script[i - 1])):
            m = _DOLLAR_TAG.match(script, i)
            if m:
                close = script.find(m.group(0), m.end())
                i = n if close < 0 else close + len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    flush(n)
    return out


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_" or c == "$"


def _skip_quoted(s: str, i: int, quote: str, *, backslash: bool) -> int:
    n = len(s)
    while i < n:
        c = s[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and s[i + 1] == quote:  # doubled quote is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return n
