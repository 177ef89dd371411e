"""Which migration files exist and in which order: numbered files per owner, a plugin's
``migrations`` folder (and the ``schema`` file of a plugin written before them), the names an
earlier daz recorded them under, and the online index steps and function repairs drawn from
them."""
from __future__ import annotations

import sys
import textwrap

import pytest

from daz.db import functions
from daz.db.migrate import MigrationChanged, online_steps
from daz.db.migration_files import (
    CORE_DIR,
    Migration,
    MigrationFileError,
    all_migrations,
    numbered_files,
    plugin_migrations,
)
from daz.preflight import OperatorError


def test_files_are_ordered_by_number_not_by_text(tmp_path):
    for name in ("010_ten.sql", "002_two.sql", "001_baseline.sql"):
        (tmp_path / name).write_text("SELECT 1;\n")
    (tmp_path / "README.md").write_text("not SQL: ignored")
    assert [p.name for _, p in numbered_files("x", tmp_path)] == [
        "001_baseline.sql", "002_two.sql", "010_ten.sql"]


def test_a_sql_file_without_a_number_is_an_error_naming_it(tmp_path):
    (tmp_path / "001_baseline.sql").write_text("SELECT 1;\n")
    (tmp_path / "add_column.sql").write_text("SELECT 2;\n")
    with pytest.raises(MigrationFileError, match=r"add_column\.sql.*NNN_name\.sql") as failure:
        numbered_files("x", tmp_path)
    assert isinstance(failure.value, OperatorError)


def test_two_files_with_one_number_are_an_error(tmp_path):
    (tmp_path / "002_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "002_b.sql").write_text("SELECT 2;\n")
    with pytest.raises(MigrationFileError, match=r"002_a\.sql and 002_b\.sql"):
        numbered_files("x", tmp_path)


def test_core_first_then_plugins_each_with_the_name_an_earlier_daz_recorded():
    found = all_migrations()
    owners = [m.owner for m in found]
    assert owners[: owners.count("core")] == ["core"] * owners.count("core")
    by_name = {m.name: m for m in found}
    assert by_name["core/025_retry_persistence.sql"].legacy_name == \
        "scripts/sql/025_retry_persistence.sql"
    assert by_name["core/032_scaleout.sql"].legacy_name == "scaleout/schema.sql"
    assert by_name["sql/001_baseline.sql"].legacy_name == "plugins/sql/schema.sql"
    assert by_name["core/025_retry_persistence.sql"].path.parent == CORE_DIR
    # Every owner's files in number order.
    for owner in set(owners):
        numbers = [int(m.file[:3]) for m in found if m.owner == owner]
        assert numbers == sorted(numbers)


def write_plugin(tmp_path, monkeypatch, module: str, body: str, files: dict[str, str]):
    package = tmp_path / module
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(body))
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    import importlib

    return importlib.import_module(module)


def test_a_plugin_adds_migration_002_by_adding_the_file(tmp_path, monkeypatch):
    mod = write_plugin(tmp_path, monkeypatch, "daz_probe_plugin_a", """
        from daz.plugins.base import Plugin

        class Probe(Plugin):
            name = "probe"
        """, {"migrations/001_baseline.sql": "CREATE TABLE daz_probe (id int);\n",
              "migrations/002_add_note.sql": "ALTER TABLE daz_probe ADD COLUMN note text;\n"})
    found = plugin_migrations("probe", mod.Probe)
    assert [(m.name, m.legacy_name) for m in found] == [
        ("probe/001_baseline.sql", "plugins/probe/schema.sql"),
        ("probe/002_add_note.sql", None)]


def test_a_plugin_that_still_names_a_schema_file_gets_it_applied_first(tmp_path, monkeypatch):
    mod = write_plugin(tmp_path, monkeypatch, "daz_probe_plugin_b", """
        from daz.plugins.base import Plugin

        class Old(Plugin):
            name = "old"
            schema = "schema.sql"
        """, {"schema.sql": "CREATE TABLE IF NOT EXISTS daz_old (id int);\n",
              "migrations/002_more.sql": "ALTER TABLE daz_old ADD COLUMN note text;\n"})
    found = plugin_migrations("old", mod.Old)
    assert [(m.name, m.legacy_name) for m in found] == [
        ("old/schema.sql", "plugins/old/schema.sql"), ("old/002_more.sql", None)]


def test_a_plugin_without_a_migrations_folder_has_none(tmp_path, monkeypatch):
    mod = write_plugin(tmp_path, monkeypatch, "daz_probe_plugin_c", """
        from daz.plugins.base import Plugin

        class Bare(Plugin):
            name = "bare"
        """, {})
    (tmp_path / "daz_probe_plugin_c" / "migrations").rmdir()
    assert plugin_migrations("bare", mod.Bare) == []


def test_the_checksum_ignores_line_ends_and_an_earlier_daz_hashed_the_bytes(tmp_path):
    unix, windows = tmp_path / "001_a.sql", tmp_path / "001_b.sql"
    unix.write_bytes(b"SELECT 1;\nSELECT 2;\n")
    windows.write_bytes(b"SELECT 1;\r\nSELECT 2;\r\n")
    a, b = Migration("x", unix.name, unix), Migration("x", windows.name, windows)
    assert a.checksum() == b.checksum()
    import hashlib

    assert hashlib.sha256(windows.read_bytes()).hexdigest() in b.legacy_checksums()


def test_the_changed_error_is_one_line_naming_the_file_and_what_to_do(tmp_path):
    path = tmp_path / "002_x.sql"
    path.write_text("SELECT 1;\n")
    message = str(MigrationChanged([Migration("probe", path.name, path)]))
    assert "\n" not in message
    assert "probe/002_x.sql" in message and str(path) in message
    assert "restore the applied text" in message and str(tmp_path) in message


def test_a_later_drop_of_an_index_wins_over_its_earlier_build(tmp_path):
    first, second = tmp_path / "001_a.sql", tmp_path / "002_b.sql"
    first.write_text("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_a ON t (a);\n"
                     "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_b ON t (b);\n")
    second.write_text("DROP INDEX CONCURRENTLY IF EXISTS idx_a;\n")
    steps = online_steps([Migration("x", first.name, first), Migration("x", second.name, second)])
    # Applied once, 001 is not run again, but its steps are resumed at every start: idx_a
    # would be built and dropped again each time if its build still counted.
    assert [(s.index, s.is_drop, s.source) for s in steps] == [
        ("idx_b", False, "x/001_a.sql"), ("idx_a", True, "x/002_b.sql")]


def test_repair_runs_only_the_statements_of_the_drifted_functions():
    text = textwrap.dedent("""\
        CREATE TABLE t (id int);
        DROP FUNCTION IF EXISTS f(bigint, text);
        CREATE OR REPLACE FUNCTION f(a bigint) RETURNS void LANGUAGE sql AS $$ SELECT 1; $$;
        CREATE OR REPLACE FUNCTION g() RETURNS void LANGUAGE sql AS $$ SELECT 2; $$;
        INSERT INTO t VALUES (1);
        DO $do$ BEGIN GRANT EXECUTE ON FUNCTION f(bigint), g() TO someone; END $do$;
        DO $do$ BEGIN GRANT EXECUTE ON FUNCTION g() TO someone; END $do$;
        """)
    chosen = [s.text.split("(")[0] for s in functions.repair_statements(text, {"F"})]
    assert chosen == ["DROP FUNCTION IF EXISTS f", "CREATE OR REPLACE FUNCTION f",
                      "DO $do$ BEGIN GRANT EXECUTE ON FUNCTION f"]
