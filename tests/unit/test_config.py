"""Config: the Go Daz format, clear errors naming the key, warnings for unknown keys."""
import json
import logging

import pytest

from daz.config import ConfigError, load_config

GO_CONFIG = {
    "core": {
        "rooms": [
            {"id": "main", "channel": "always_always_sunny", "username": "Dazza",
             "password": "secret", "enabled": True, "reconnect_attempts": 10,
             "cooldown_minutes": 30},
            {"channel": "other", "enabled": False},
        ],
        "database": {"host": "localhost", "port": 5432, "database": "daz", "user": "daz_user",
                     "password": "pw"},
    },
    "event_bus": {"buffer_sizes": {"cytube.event": 2000, "sql.request": 500}},
    "plugins": {
        "sql": {"core_event_batch_size": 64, "logger_rules": [
            {"event_pattern": "cytube.event.*", "enabled": True, "table": "daz_core_events"}]},
        "eventfilter": {"command_prefix": "!"},
        "wsbridge": {"enabled": False},
    },
}


def write(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_reads_the_go_daz_config_format(tmp_path):
    config = load_config(write(tmp_path, GO_CONFIG), env={})
    assert [r.id for r in config.enabled_rooms] == ["main"]
    room = config.enabled_rooms[0]
    assert room.server_url == "https://cytu.be" and room.max_backoff_seconds == 1800
    assert config.core.rooms[1].id == "other"  # id defaults to the channel
    assert config.core.database.url() == "postgresql://daz_user:pw@localhost:5432/daz"
    assert config.plugin_section("eventfilter") == {"command_prefix": "!"}


def test_wrong_type_names_the_key_and_refuses(tmp_path):
    bad = json.loads(json.dumps(GO_CONFIG))
    bad["core"]["rooms"][0]["enabled"] = "sometimes"
    with pytest.raises(ConfigError, match=r"core\.rooms\[0\]\.enabled"):
        load_config(write(tmp_path, bad), env={})


def test_missing_required_key_names_it(tmp_path):
    bad = {"core": {"rooms": [{"username": "x", "enabled": True}]}}
    with pytest.raises(ConfigError, match=r"core\.rooms\[0\]\.channel: Field required"):
        load_config(write(tmp_path, bad), env={})


def test_unknown_key_is_a_warning_not_an_error(tmp_path, caplog):
    data = json.loads(json.dumps(GO_CONFIG))
    data["core"]["rooms"][0]["colour"] = "blue"
    with caplog.at_level(logging.WARNING, logger="daz.config"):
        load_config(write(tmp_path, data), env={})
    assert "core.rooms[0].colour" in caplog.text


def test_flags_and_env_override_the_file(tmp_path):
    config = load_config(write(tmp_path, GO_CONFIG),
                         env={"DAZ_DATABASE_URL": "postgresql://env/db", "DAZ_DB_HOST": "dbhost"},
                         overrides={"channel": "flagchan", "server": "http://127.0.0.1:9",
                                    "web_port": 9999})
    assert config.core.rooms[0].channel == "flagchan"
    assert all(r.server_url == "http://127.0.0.1:9" for r in config.core.rooms)
    assert config.core.database.url() == "postgresql://env/db"
    assert config.core.web.port == 9999


def test_single_room_from_flags_with_no_file():
    config = load_config(None, env={}, overrides={"channel": "mychan", "username": "bot",
                                                  "password": "pw"})
    (room,) = config.enabled_rooms
    assert (room.id, room.channel, room.username) == ("mychan", "mychan", "bot")
    assert config.core.database.url() == ""  # embedded PostgreSQL


def test_sql_plugin_database_section_is_the_same_setting(tmp_path):
    data = {"core": {"rooms": [{"channel": "c", "enabled": True}]},
            "plugins": {"sql": {"database": {"host": "h", "database": "d", "user": "u"}}}}
    assert load_config(write(tmp_path, data), env={}).core.database.url() == "postgresql://u@h:5432/d"


def test_invalid_json_and_bad_channel_are_clear(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(p, env={})
    with pytest.raises(ConfigError, match=r"core\.rooms\[0\]\.channel"):
        load_config(None, env={}, overrides={"channel": "bad channel!"})


def test_zero_database_timeouts_from_a_go_config_take_the_defaults(tmp_path):
    # Go configs put connect_timeout under plugins.sql.database; 0 there means "not set".
    data = json.loads(json.dumps(GO_CONFIG))
    data["plugins"]["sql"]["database"] = {"connect_timeout": 0, "max_conn_lifetime": 3600}
    data["core"]["database"]["command_timeout"] = 0.0
    data["core"]["database"]["max_connections"] = 0
    db = load_config(write(tmp_path, data), env={}).core.database
    assert (db.connect_timeout, db.command_timeout, db.max_connections) == (10.0, 30.0, 10)
    data["core"]["database"].update(connect_timeout=2.5, command_timeout=7, max_connections=3)
    db = load_config(write(tmp_path, data), env={}).core.database
    assert (db.connect_timeout, db.command_timeout, db.max_connections) == (2.5, 7.0, 3)


def test_negative_max_connections_is_refused_naming_the_key(tmp_path):
    data = json.loads(json.dumps(GO_CONFIG))
    data["core"]["database"]["max_connections"] = -2
    with pytest.raises(ConfigError, match=r"core\.database\.max_connections"):
        load_config(write(tmp_path, data), env={})


@pytest.mark.parametrize("key", ["connect_timeout", "command_timeout"])
def test_negative_database_timeout_is_refused_naming_the_key(tmp_path, key):
    data = json.loads(json.dumps(GO_CONFIG))
    data["core"]["database"][key] = -1
    with pytest.raises(ConfigError, match=rf"core\.database\.{key}: .*greater than 0"):
        load_config(write(tmp_path, data), env={})


def test_a_go_config_with_the_keys_daz_has_no_field_for_loads_without_warnings(tmp_path, caplog):
    from daz.config import GO_COMPAT_KEYS, validate_plugin_config
    from daz.plugins.registry import builtin_plugins

    data = json.loads(json.dumps(GO_CONFIG))
    data["event_bus"]["buffer_sizes"]["plugin.request.command"] = 3000
    data["plugins"]["sql"].update(
        max_connections=20, max_conn_lifetime=3600, connect_timeout=30,
        background_max_connections=2, critical_lane_concurrency=2,
        background_lane_concurrency=1, background_queue_max=40, background_queue_wait_ms=1200,
        core_event_queue_size=4000, core_event_flush_ms=200, enable_pg_stat_statements=True,
        pg_stat_report_interval_seconds=0, pg_stat_top_n=5,
        database={"host": "localhost", "database": "daz"})
    data["plugins"]["gallery"] = {"generate_html": True, "publish_min_interval_seconds": 60,
                                  "publish_retry_max": 3, "publish_retry_backoff_ms": 1500}
    data["plugins"]["greeter"] = {"use_greeting_engine": True, "enforce_question_greeting": True,
                                  "enable_follow_up_mode": False, "fortune_probability": 0.2}
    with caplog.at_level(logging.WARNING):
        config = load_config(write(tmp_path, data), env={})
        classes = builtin_plugins()
        checked = {name: validate_plugin_config(name, classes[name].Config,
                                                config.plugin_section(name))
                   for name in ("sql", "gallery", "greeter", "eventfilter")}
    assert caplog.text == ""
    assert checked["sql"].core_event_batch_size == 64
    assert checked["greeter"].enforce_question_greeting is True
    assert not any(cfg.model_extra for cfg in checked.values())
    assert not hasattr(config, "event_bus")
    # the keys used here are exactly the listed ones, so the list is what makes them quiet
    used = {"event_bus"} | {f"plugins.{name}.{key}" for name in ("sql", "gallery", "greeter")
                            for key in data["plugins"][name]}
    assert used - set(GO_COMPAT_KEYS) == {
        f"plugins.sql.{k}" for k in ("core_event_batch_size", "logger_rules",
                                     "core_event_queue_size", "core_event_flush_ms")} | {
        f"plugins.greeter.{k}" for k in ("use_greeting_engine", "enforce_question_greeting")}


def test_an_unknown_plugin_key_still_warns_and_a_wrong_type_still_refuses(caplog):
    from daz.config import validate_plugin_config
    from daz.plugins.gallery.settings import GalleryConfig
    from daz.plugins.sql import SqlConfig

    with caplog.at_level(logging.WARNING, logger="daz.config"):
        cfg = validate_plugin_config("sql", SqlConfig, {"pg_stat_top_n": 5, "colour": "blue"})
    assert "plugins.sql.colour" in caplog.text and "pg_stat_top_n" not in caplog.text
    assert cfg.model_extra == {"colour": "blue"}
    # a Go key of one plugin is unknown in another's section
    with caplog.at_level(logging.WARNING, logger="daz.config"):
        validate_plugin_config("gallery", GalleryConfig, {"pg_stat_top_n": 5})
    assert "plugins.gallery.pg_stat_top_n" in caplog.text
    with pytest.raises(ConfigError, match=r"plugins\.sql\.core_event_batch_size"):
        validate_plugin_config("sql", SqlConfig, {"core_event_batch_size": "lots",
                                                  "max_connections": 20})
