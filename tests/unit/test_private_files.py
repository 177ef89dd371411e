"""Private data stays private: the data directory is 0700 and every file daz writes there is
0600 whatever the umask (spill rewrites, rejected rows, held writes, the web token); and the
bot password's sources other than the command line."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from daz.config import load_config
from daz.journal import open_journal, stream_at
from daz.password_input import PasswordFileError, prompt_missing_passwords, read_password_file
from daz.plugins.sql.eventlog import EventLog
from daz.private_files import open_private, private_dir
from daz.web.auth import load_or_create_token


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    old = os.umask(0o022)  # the usual default: files 0644, directories 0755
    yield
    os.umask(old)


def test_the_data_directory_is_made_or_tightened_to_0700(tmp_path):
    made = private_dir(tmp_path / "new" / "data")
    assert mode(made) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    (old / "eventlog.spill").write_text("left by an older daz\n")
    (old / "eventlog.spill").chmod(0o644)
    (old / "postgres").mkdir()  # the cluster's own directory is PostgreSQL's business
    private_dir(old)
    assert mode(old) == 0o700 and mode(old / "eventlog.spill") == 0o600


def test_open_private_creates_0600_and_tightens_a_file_left_readable(tmp_path):
    fresh = tmp_path / "fresh"
    with open_private(fresh, "w") as f:
        f.write("x")
    assert mode(fresh) == 0o600
    left = tmp_path / "left"
    left.write_text("old\n")
    left.chmod(0o644)
    with open_private(left, "a") as f:
        f.write("new\n")
    assert mode(left) == 0o600 and left.read_text() == "old\nnew\n"


async def test_a_rewritten_spill_file_is_0600(tmp_path):
    spill = stream_at(tmp_path / "eventlog.spill")
    spill.append("b")
    await spill.flush()  # created 0600 by the append path
    await spill.prepend(["a"])  # the shutdown path: renames a new file over the old one
    assert (tmp_path / "eventlog.spill").read_text().splitlines()[0].endswith("\ta")
    assert mode(tmp_path / "eventlog.spill") == 0o600


def test_rejected_rows_are_0600(tmp_path):
    log = EventLog(None, journal=stream_at(tmp_path / "eventlog.spill"))
    log._reject_raw(json.dumps({"chat": "a private line"}), "daz_chat_log: bad value")
    rejected = tmp_path / "eventlog.spill.rejected"
    assert "a private line" in rejected.read_text()
    assert mode(rejected) == 0o600


def test_held_writes_saved_at_shutdown_are_0600(tmp_path):
    journal = open_journal(tmp_path / "data")
    stream = journal.stream("usertracker-held")
    stream.write_now([{"op": "leave", "user": "alice"}])
    assert mode(stream.path) == 0o600 and mode(journal.directory) == 0o700
    stream.replace_now([{"op": "join", "user": "bob"}])  # rewritten: renamed into place
    assert mode(stream.path) == 0o600


def test_the_generated_web_token_is_0600_in_a_0700_directory(tmp_path, capsys):
    data = tmp_path / "data"
    token = load_or_create_token("", data)
    assert (data / "web-token").read_text().strip() == token
    assert mode(data / "web-token") == 0o600 and mode(data) == 0o700


def test_a_password_file_gives_its_first_line_and_warns_when_others_may_read_it(tmp_path,
                                                                                caplog):
    path = tmp_path / "pw"
    path.write_text(" spaced pass \nsecond line\n")
    path.chmod(0o600)
    assert read_password_file(path) == " spaced pass "
    assert "can be read by other users" not in caplog.text
    path.chmod(0o644)
    read_password_file(path)
    assert "can be read by other users" in caplog.text
    with pytest.raises(PasswordFileError, match=r"cannot read the password file .*missing"):
        read_password_file(tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(PasswordFileError, match="is empty"):
        read_password_file(tmp_path / "empty")


def test_a_terminal_is_asked_for_each_room_with_a_name_and_no_password():
    config = load_config(None, env={}, overrides={"channel": "chan", "username": "bot"})
    asked: list[str] = []

    def ask(text: str) -> str:
        asked.append(text)
        return "typed secret"

    assert prompt_missing_passwords(config, ask=ask, interactive=False) == 0
    assert config.enabled_rooms[0].password == ""  # no terminal: a guest login with that name
    assert prompt_missing_passwords(config, ask=ask, interactive=True) == 1
    assert config.enabled_rooms[0].password == "typed secret"
    assert "bot" in asked[0] and "typed secret" not in asked[0]
    assert prompt_missing_passwords(config, ask=ask, interactive=True) == 0  # already has one


def test_the_database_password_can_come_from_the_environment_instead_of_the_url():
    env = {"DAZ_DATABASE_URL": "postgresql://daz_user@db.example/daz", "DAZ_DB_PASSWORD": "p w/@"}
    assert load_config(None, env=env).core.database.url() == \
        "postgresql://daz_user:p%20w%2F%40@db.example/daz"
    env["DAZ_DATABASE_URL"] = "postgresql://daz_user:in-url@db.example/daz"  # the URL's wins
    assert load_config(None, env=env).core.database.url() == env["DAZ_DATABASE_URL"]
