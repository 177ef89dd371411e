"""Are daz's SQL functions still daz's? The Go bot's scripts define functions of the same names
(``fail_retry``, ``add_gallery_image``, ``acquire_retry_batch``, ...); someone re-running them
with ``psql -f`` after daz migrated the database puts the Go bodies back (with their bugs), or
adds a Go signature next to daz's one, so that calls become ambiguous.

The reference is the migration files themselves: the body of every ``CREATE FUNCTION`` in them
is compared with ``pg_proc.prosrc`` (PostgreSQL keeps a body exactly as written between its
dollar quotes). No fingerprint table is needed, so a database migrated by any daz version can be
checked. ``migrate`` restores a drifted function by running again the statements of the file
that defines it which concern that function (``repair_statements``): its ``DROP FUNCTION``s
(the Go signatures it replaces), its ``CREATE FUNCTION``s and the grants naming it. The rest
of the file is not run again: a migration is applied once.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from daz.db.sqlsplit import Statement, split_sql

_CREATE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(?:public\.)?(\w+)\s*\(",
                     re.IGNORECASE)
_DROP = re.compile(r"^\s*DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(?:public\.)?(\w+)\s*\(",
                   re.IGNORECASE)
_GRANT = re.compile(r"\bGRANT\s+EXECUTE\s+ON\s+FUNCTION\b", re.IGNORECASE)
_BODY = re.compile(r"\bAS\s+\$(\w*)\$(.*?)\$\1\$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class FunctionDrift:
    name: str
    signature: str | None  # the installed overload at fault; None when daz's is missing
    problem: str
    migration: str  # the file that defines daz's version (re-applying it repairs)

    def describe(self) -> str:
        return f"{self.signature or self.name}: {self.problem}"


def expected_bodies(migrations: Iterable) -> dict[str, tuple[str, list[str]]]:
    """Function name → (defining migration, its bodies); a later file's definition wins."""
    out: dict[str, tuple[str, list[str]]] = {}
    for migration in migrations:
        found: dict[str, list[str]] = {}
        for statement in split_sql(migration.text()):
            head = _CREATE.match(_without_comments(statement.text))
            body = _BODY.search(statement.text)
            if head and body:
                found.setdefault(head.group(1).lower(), []).append(body.group(2))
        for name, bodies in found.items():
            out[name] = (migration.name, bodies)
    return out


def repair_statements(text: str, names: set[str]) -> list[Statement]:
    """The statements of a migration that define, replace, drop or grant the named functions,
    in file order. A grant may name several functions; granting again changes nothing."""
    wanted = {name.lower() for name in names}
    out = []
    for statement in split_sql(text):
        code = _without_comments(statement.text)
        head = _CREATE.match(code) or _DROP.match(code)
        defines = head is not None and head.group(1).lower() in wanted
        grants = _GRANT.search(code) is not None and any(
            re.search(rf"\b{re.escape(name)}\s*\(", code, re.IGNORECASE) for name in wanted)
        if defines or grants:
            out.append(statement)
    return out


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


async def drift(conn, migrations: Iterable) -> list[FunctionDrift]:
    """Functions of the given (applied) migrations that are not as those files define them."""
    expected = expected_bodies(migrations)
    if not expected:
        return []
    rows = await conn.fetch(
        "SELECT p.proname, p.oid::regprocedure::text AS signature, p.prosrc"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = current_schema() AND p.proname = ANY($1::text[])"
        " ORDER BY p.proname, signature", list(expected))
    installed: dict[str, list] = {}
    for row in rows:
        installed.setdefault(row["proname"], []).append(row)
    out: list[FunctionDrift] = []
    for name, (migration, bodies) in sorted(expected.items()):
        present = installed.get(name, [])
        sources = [row["prosrc"] for row in present]
        for body in bodies:
            if body in sources:
                continue
            problem = ("replaced: its body is not the one daz installs" if present
                       else "missing")
            signature = present[0]["signature"] if len(present) == 1 else None
            out.append(FunctionDrift(name, signature, problem, migration))
        for row in present:
            if row["prosrc"] not in bodies and len(present) > len(bodies):
                out.append(FunctionDrift(name, row["signature"],
                                         "an extra signature daz does not define (calls may"
                                         " become ambiguous)", migration))
    return out
