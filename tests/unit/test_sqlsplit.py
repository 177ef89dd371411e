"""split_sql against the quoting and comment rules of PostgreSQL's lexer: a semicolon ends a
statement only outside strings, quoted identifiers, comments and dollar-quoted bodies."""
from __future__ import annotations

import pytest

from daz.db.sqlsplit import split_sql


def texts(script: str) -> list[str]:
    return [s.text for s in split_sql(script)]


def test_plain_statements_split_at_semicolons_and_keep_their_lines():
    got = split_sql("SELECT 1;\n\nSELECT 2;\nSELECT 3")
    assert [(s.text, s.line) for s in got] == [("SELECT 1", 1), ("SELECT 2", 3), ("SELECT 3", 4)]


@pytest.mark.parametrize("literal", [
    r"E'it\'s; here'",  # backslash-escaped quote
    r"e'back\\'",  # an escaped backslash, then the closing quote
    r"E'tab\t; and \\\' quote'",
    r"U&'\0041; x'",  # Unicode escapes: no backslash escapes, quote ends it
])
def test_escape_strings(literal):
    assert texts(f"SELECT {literal};\nSELECT 2") == [f"SELECT {literal}", "SELECT 2"]


def test_a_backslash_in_a_standard_string_is_just_a_character():
    # standard_conforming_strings: 'a\' is the string a\ and the next ; ends the statement.
    assert texts("SELECT 'a\\';\nSELECT 2") == ["SELECT 'a\\'", "SELECT 2"]


def test_an_identifier_ending_in_e_does_not_make_the_next_string_an_escape_string():
    # "some'" : the quote after an identifier like "name" is a standard string.
    assert texts("SELECT name'x\\';SELECT 2") == ["SELECT name'x\\'", "SELECT 2"]


def test_doubled_quotes_in_standard_strings_and_identifiers():
    script = "SELECT 'it''s; fine', \"we\"\"ird;col\";\nSELECT '';\nSELECT '''';SELECT 4"
    assert texts(script) == ["SELECT 'it''s; fine', \"we\"\"ird;col\"", "SELECT ''",
                             "SELECT ''''", "SELECT 4"]


def test_quoted_identifier_with_semicolon():
    assert texts('CREATE TABLE "a;b" (id int);\nDROP TABLE "a;b"') == [
        'CREATE TABLE "a;b" (id int)', 'DROP TABLE "a;b"']


def test_nested_block_comments():
    script = "SELECT 1 /* outer /* inner; */ still; comment */ + 1;\nSELECT 2"
    assert texts(script) == ["SELECT 1 /* outer /* inner; */ still; comment */ + 1", "SELECT 2"]


def test_a_block_comment_between_statements_is_dropped_with_a_comment_only_piece():
    assert texts("/* a; b */;\n/* c */ SELECT 1;") == ["SELECT 1"]


def test_an_unclosed_block_comment_swallows_the_rest():
    assert texts("SELECT 1;\n/* never closed; SELECT 2;") == ["SELECT 1"]


def test_line_comments_with_semicolons_and_quotes():
    script = ("-- first; it's a comment\nSELECT 1 -- trailing; 'quote\n, 2;\n"
              "SELECT 3; -- after;\n--\n")
    assert texts(script) == ["SELECT 1 -- trailing; 'quote\n, 2", "SELECT 3"]


def test_comment_markers_inside_strings_are_text():
    assert texts("SELECT '-- no; /* no', $$ -- no; $$;SELECT 2") == [
        "SELECT '-- no; /* no', $$ -- no; $$", "SELECT 2"]


def test_dollar_quoted_body_with_semicolons():
    script = ("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  PERFORM 1;\n"
              "  RETURN 2;\nEND;\n$$;\nSELECT f()")
    got = texts(script)
    assert len(got) == 2 and got[0].endswith("END;\n$$") and got[1] == "SELECT f()"


def test_tagged_body_containing_other_tags_and_plain_dollars():
    body = "BEGIN EXECUTE $q$SELECT 1; $$ ; $q$; RETURN 'x;$'; END;"
    script = f"CREATE FUNCTION g() RETURNS text AS $fn${body}$fn$ LANGUAGE plpgsql;\nSELECT 2"
    assert texts(script) == [f"CREATE FUNCTION g() RETURNS text AS $fn${body}$fn$"
                             " LANGUAGE plpgsql", "SELECT 2"]


def test_dollar_tags_are_case_sensitive():
    script = "SELECT $Tag$ a; $tag$ b; $Tag$;SELECT 2"
    assert texts(script) == ["SELECT $Tag$ a; $tag$ b; $Tag$", "SELECT 2"]


def test_positional_parameters_and_identifiers_with_dollars_are_not_quotes():
    assert texts("SELECT $1, $2;SELECT a$b$c FROM t;SELECT 3") == [
        "SELECT $1, $2", "SELECT a$b$c FROM t", "SELECT 3"]


def test_a_do_block_with_nested_quotes():
    script = ("DO $do$\nBEGIN\n  EXECUTE format('CREATE TABLE %I (x text DEFAULT ''a;b'')',"
              " 't');\nEND\n$do$;\nSELECT 1;")
    got = texts(script)
    assert len(got) == 2 and got[0].startswith("DO $do$") and got[0].endswith("$do$")


def test_statement_line_numbers_skip_leading_comments():
    got = split_sql("-- header\n/* block\n */\nSELECT 1;\n\n-- note\nSELECT\n 2;")
    assert [(s.text, s.line) for s in got] == [("SELECT 1", 4), ("SELECT\n 2", 7)]


def test_every_migration_file_splits_into_statements_that_end_cleanly():
    from daz.db.migrate import migrations

    for migration in migrations():
        for statement in split_sql(migration.text()):
            assert not statement.text.endswith(";"), (migration.name, statement.line)
            assert statement.text.strip(), (migration.name, statement.line)


def test_an_escape_string_at_the_very_start_and_crlf_line_ends():
    assert texts("E'a\\';b';\r\nSELECT 2 -- c;\r\n;") == ["E'a\\';b'", "SELECT 2 -- c;"]
