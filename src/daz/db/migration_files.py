"""Where daz's migrations are and in which order they run.

Each owner has a folder of numbered SQL files, ``001_baseline.sql``, ``002_add_x.sql``, ...:

* ``core``: ``daz/migrations/``, the Go bot's scripts 025–031 (fixed) and daz's own core
  tables from 032 on;
* every plugin (built-in or installed): the ``migrations`` folder beside its module (the
  ``Plugin.migrations`` attribute), plus the one file a plugin written before numbered
  migrations names in ``Plugin.schema``, as its first.

Order: core first, then the plugins in the registry's start order (each after the plugins it
declares in ``after``), each owner's files by number. A file is recorded as ``owner/file``.

The first files (the Go scripts, each plugin's ``001_baseline.sql``) are what an earlier daz
applied on every start, re-runnable because they adopt a database the Go bot made; they keep
that text byte for byte, so a database an earlier daz migrated is recognised by the checksum it
recorded (``legacy_name``). Files after them run once and need not be re-runnable.
"""
from __future__ import annotations

import hashlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from daz.preflight import OperatorError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PLUGINS_DIR = PACKAGE_DIR / "plugins"
CORE_DIR = PACKAGE_DIR / "migrations"
CORE = "core"
_NUMBERED = re.compile(r"^(\d+)_[A-Za-z0-9_.-]+\.sql$")

# How daz before numbered migrations recorded the core files (daz_schema_migrations.name).
_CORE_LEGACY = {
    **{f: f"scripts/sql/{f}" for f in (
        "025_retry_persistence.sql", "026_plugin_stats.sql", "027_gallery_system.sql",
        "028_fix_gallery_race_condition.sql", "029_graveyard_recovery_procedure.sql",
        "030_fix_gallery_duplicates.sql", "031_ollama_responses.sql")},
    "032_scaleout.sql": "scaleout/schema.sql",
}


# Baselines whose comments were reworded after the last daz that recorded its migrations in
# daz_schema_migrations: the checksum of the text that daz shipped still means "this one ran".
EARLIER_TEXTS: dict[str, set[str]] = {
    "analytics/001_baseline.sql": {
        "bec22b75a3f85425f9523abd94b6a83842454af8e149462f4c681806f6f91257"},
    "greeter/001_baseline.sql": {
        "e565971fb817e11d20995a93f2c044178d647cc12bb3bf9c22db6dca273acc9f"},
    "mediatracker/001_baseline.sql": {
        "a6ad3a181e7349a89d7ac1948b662a39b3ace1bb3545b2119e17e56c23be47d3"},
    "tell/001_baseline.sql": {
        "1d7141e66fb5e93f2fc6d5a75f7e8aba1c0c0310055e9feaff18f7b8bb3307ca"},
}


class MigrationFileError(OperatorError):
    """A migrations folder daz cannot order: a badly named file, or two with one number."""


@dataclass(frozen=True)
class Migration:
    owner: str  # "core" or the plugin's name
    file: str  # the file name, stable across a source checkout and an installed wheel
    path: Path
    legacy_name: str | None = None  # its name in daz_schema_migrations, if it had one

    @property
    def name(self) -> str:
        return f"{self.owner}/{self.file}"

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def checksum(self) -> str:
        """Of the text with line ends made LF, so a Windows checkout is not a changed file."""
        return hashlib.sha256(self.path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()

    def legacy_checksums(self) -> set[str]:
        """What an earlier daz recorded for this very text (it hashed the bytes as they were),
        or for the text it shipped before a comment of the file was reworded."""
        return {self.checksum(), hashlib.sha256(self.path.read_bytes()).hexdigest(),
                *EARLIER_TEXTS.get(self.name, ())}


def numbered_files(owner: str, folder: Path) -> list[tuple[int, Path]]:
    """The folder's ``NNN_name.sql`` files by number; anything else ending in .sql, or a number
    used twice, is an error (a file that silently never ran would be worse)."""
    if not folder.is_dir():
        return []
    found: dict[int, Path] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NUMBERED.match(path.name)
        if not match:
            raise MigrationFileError(
                f"migration file {path} ({owner}) is not named NNN_name.sql: rename it, e.g."
                f" 002_{path.stem}.sql, so daz knows when to apply it")
        number = int(match.group(1))
        if number in found:
            raise MigrationFileError(
                f"migrations {found[number].name} and {path.name} of {owner} ({folder}) have"
                f" the same number: give the newer one the next free number")
        found[number] = path
    return sorted(found.items())


def core_migrations() -> list[Migration]:
    out = []
    for _, path in numbered_files(CORE, CORE_DIR):
        out.append(Migration(CORE, path.name, path, _CORE_LEGACY.get(path.name)))
    return out


def plugin_migrations(name: str, cls: type) -> list[Migration]:
    """A plugin's migrations: its ``schema`` file (if it still names one), then its folder's."""
    here = Path(inspect.getfile(cls)).resolve().parent
    out = []
    legacy_file = getattr(cls, "schema", None)
    if legacy_file:
        path = here / legacy_file
        out.append(Migration(name, path.name, path, f"plugins/{name}/{path.name}"))
    folder = getattr(cls, "migrations", None)
    for number, path in numbered_files(name, here / folder) if folder else []:
        # The first numbered file took over from schema.sql, which an earlier daz recorded.
        legacy = f"plugins/{name}/schema.sql" if number == 1 and not legacy_file else None
        out.append(Migration(name, path.name, path, legacy))
    return out


def all_migrations() -> list[Migration]:
    """Core's, then every available plugin's in start order."""
    from daz.plugins.registry import available_plugins

    out = core_migrations()
    for name, cls in available_plugins().items():
        out += plugin_migrations(name, cls)
    return out
