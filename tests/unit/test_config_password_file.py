"""A room's ``password_file``: the password's first line, read relative to the config file, with
errors that name the key."""
from __future__ import annotations

import json

import pytest

from daz.config import ConfigError, load_config


def _config(tmp_path, **room) -> object:
    path = tmp_path / "etc" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"core": {"rooms": [
        {"channel": "lobby", "enabled": True, **room}]}}))
    return path


def test_a_relative_password_file_is_read_next_to_the_config(tmp_path, monkeypatch):
    path = _config(tmp_path, username="bot", password_file="secret")
    (path.parent / "secret").write_text("pass word \nignored second line\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    assert load_config(path, env={}).core.rooms[0].password == "pass word "


def test_a_password_in_the_config_wins_over_the_file(tmp_path):
    path = _config(tmp_path, username="bot", password="inline", password_file="missing")
    assert load_config(path, env={}).core.rooms[0].password == "inline"


def test_a_missing_or_empty_password_file_names_the_key(tmp_path):
    path = _config(tmp_path, username="bot", password_file="missing")
    with pytest.raises(ConfigError,
                       match=r"core\.rooms\[0\]\.password_file: cannot read .*missing"):
        load_config(path, env={})
    (path.parent / "empty").write_text("")
    path = _config(tmp_path, username="bot", password_file="empty")
    with pytest.raises(ConfigError, match=r"core\.rooms\[0\]\.password_file: .*empty is empty"):
        load_config(path, env={})


def test_a_password_file_without_a_username_is_refused(tmp_path):
    path = _config(tmp_path, password_file="secret")
    (path.parent / "secret").write_text("pw\n")
    with pytest.raises(ConfigError, match="username is not"):
        load_config(path, env={})
