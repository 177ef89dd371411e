"""Typed configuration. Reads the Go Daz ``config.json`` format; flags and DAZ_* env override it.

* An unknown key is a warning (naming the key), so an old Go config with plugin sections daz
  does not have still starts.
* A wrong type or a missing required key is a ``ConfigError`` naming the key; the bot does not
  start.
* ``core.database`` (Go) and ``plugins.sql.database`` mean the same thing: one database setting.
* Go keys daz has no field for are accepted quietly when ``GO_COMPAT_KEYS`` lists them.
* Every key has a description; docs/config.md is generated from these models and the plugins'
  (``python -m daz.configdoc``).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

log = logging.getLogger(__name__)

DEFAULT_SERVER = "https://cytu.be"


class ConfigError(ValueError):
    pass


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# Keys a Go Daz config.json has that daz accepts without a field and without a warning: what
# they set has no counterpart here (ignored), or daz reads them where it reads its own key.
# Keys Go and daz share (``core.rooms[].*``, ``plugins.sql.core_event_batch_size``, ...) are
# ordinary fields; this list is only for the rest. docs/config.md shows it.
GO_COMPAT_KEYS: dict[str, str] = {
    "event_bus": "ignored: each plugin's queue is sized by the plugin that subscribes "
                 "(Go's event_bus.buffer_sizes)",
    "plugins.sql.database": "read as core.database; core.database wins where both set a key",
    **{f"plugins.sql.{key}": "ignored: the pool is core.database's"
       for key in ("max_connections", "max_conn_lifetime", "connect_timeout",
                   "background_max_connections")},
    **{f"plugins.sql.{key}": "ignored: writes go through the event log's batches, not lanes"
       for key in ("critical_lane_concurrency", "background_lane_concurrency",
                   "background_queue_max", "background_queue_wait_ms")},
    **{f"plugins.sql.{key}": "ignored: daz makes no pg_stat_statements reports"
       for key in ("enable_pg_stat_statements", "pg_stat_report_interval_seconds",
                   "pg_stat_top_n")},
    **{f"plugins.gallery.{key}": "ignored: the pages are served live by the web server "
                                 "(`daz gallery export` writes files)"
       for key in ("generate_html", "html_output_path", "admin_only",
                   "publish_min_interval_seconds", "publish_retry_max",
                   "publish_retry_backoff_ms")},
    **{f"plugins.greeter.{key}": "ignored: fortunes and follow-ups are not part of daz's greeter"
       for key in ("enable_fortune", "fortune_probability", "enable_follow_up_mode")},
}


def without_go_compat_keys(section: dict[str, Any], path: str,
                           fields: Any = ()) -> dict[str, Any]:
    """``section`` (the config at ``path``) less the accepted Go keys that no field of the
    model reading it declares."""
    return {key: value for key, value in section.items()
            if (f"{path}.{key}" if path else key) not in GO_COMPAT_KEYS or key in fields}


class RoomConfig(_Section):
    """One CyTube channel the bot joins (``core.rooms`` is a list of these)."""

    id: str = Field("", description="Name of the room in logs, metrics and /health; "
                                    "default: the channel")
    channel: str = Field(description="The CyTube channel name: 1-30 letters, digits, _ or -")
    username: str = Field("", description="The bot's CyTube account; empty: join as a guest "
                                          "(read-only)")
    password: str = Field("", description="The account's password (DAZ_CYTUBE_PASSWORD, "
                                          "--password and password_file also set it)")
    password_file: str = Field("", description="A file whose first line is the password "
                               "(relative: to the config file's folder), read at start when "
                               "password is empty; `daz init` writes one, mode 0600")
    enabled: bool = Field(False, description="Join this room; a room must be switched on "
                                             "explicitly, as in Go Daz")
    reconnect_attempts: int = Field(0, ge=0, description="Give up after this many failed "
                                    "reconnects in a row; 0: keep trying (with capped backoff)")
    cooldown_minutes: float = Field(0, ge=0, description="Longest wait between reconnect "
                                    "attempts; 0: 5 minutes")
    server_url: str = Field(DEFAULT_SERVER, description="The CyTube server (DAZ_SERVER_URL "
                            "and --server set it for every room)")
    max_frame_mib: float = Field(64, ge=1, le=4096, description="Largest websocket message "
                                 "accepted, in MiB; aiohttp's 4 MiB is below what a busy room "
                                 "sends on join (a 50,000-person user list or a 20,000-item "
                                 "playlist is one message)")

    @field_validator("channel")
    @classmethod
    def _channel_ok(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[\w-]{1,30}", value):
            raise ValueError("must be 1-30 characters of letters, digits, _ or -")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> RoomConfig:
        if not self.id:
            self.id = self.channel
        if bool(self.username) != bool(self.password) and self.password:
            raise ValueError("password is set but username is not")
        self.server_url = self.server_url.rstrip("/")
        return self

    @property
    def max_backoff_seconds(self) -> float:
        return self.cooldown_minutes * 60 if self.cooldown_minutes else 300.0


class DatabaseConfig(_Section):
    """PostgreSQL. With no ``dsn`` and no ``host``/``database``, daz runs an embedded
    PostgreSQL in its data directory (docs/embedded-postgres.md)."""

    dsn: str = Field("", description="A postgresql:// URL; takes precedence over the parts "
                                     "below (DAZ_DATABASE_URL, --dsn)")
    host: str = Field("", description="Server host (DAZ_DB_HOST)")
    port: int = Field(5432, description="Server port (DAZ_DB_PORT)")
    database: str = Field("", description="Database name (DAZ_DB_NAME)")
    user: str = Field("", description="User name (DAZ_DB_USER)")
    password: str = Field("", description="Password (DAZ_DB_PASSWORD); also added to a dsn "
                                          "that has none")
    max_connections: int = Field(10, ge=1, description="Size of the plugins' connection pool; "
                                 "0 (Go's 'not set') takes the default")
    min_connections: int = Field(1, ge=0, description="Connections the pool keeps open")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection; "
                                   "0 takes the default")
    command_timeout: float = Field(30.0, gt=0, description="Seconds one statement may take; "
                                   "0 takes the default")

    @field_validator("connect_timeout", "command_timeout", "max_connections", mode="before")
    @classmethod
    def _zero_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        # Go configs use 0 here for "not set" (docs/upgrading-from-go.md, "Configuration");
        # refusing them would stop a migration for nothing, so 0 takes the default. Negative
        # values still fail on their bounds, naming the key.
        zero = isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0
        if zero and info.field_name is not None:  # always set for a field validator
            return cls.model_fields[info.field_name].default
        return value

    def url(self) -> str:
        """The DSN to use, or '' when nothing is configured (then daz embeds PostgreSQL)."""
        if self.dsn:
            return self._with_password(self.dsn)
        if not self.host or not self.database:
            return ""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def _with_password(self, dsn: str) -> str:
        """A DSN without a password takes ``password`` (DAZ_DB_PASSWORD), so that the secret
        need not be in a URL on the command line."""
        from urllib.parse import urlsplit, urlunsplit

        try:
            parts = urlsplit(dsn)
        except ValueError:
            return dsn
        if not self.password or parts.password is not None or "@" not in parts.netloc:
            return dsn
        userinfo, host = parts.netloc.rsplit("@", 1)
        netloc = f"{userinfo}:{quote(self.password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc))


class WebConfig(_Section):
    """The web server: dashboards, /health, /metrics, the gallery pages (docs/deploy.md)."""

    host: str = Field("127.0.0.1", description="Address to listen on (--web-host)")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on (DAZ_WEB_PORT, "
                                                        "--web-port); 0: any free port")
    enabled: bool = Field(True, description="Serve the pages at all")
    token: str = Field("", description="Login token for the pages with chat or PM content; "
                                       "generated (and kept in the data directory) when empty")
    public_aggregates: bool = Field(True, description="Dashboards without chat text need no "
                                                      "login")
    base_url: str = Field("", description="How people reach the pages, for the links the bot "
                                          "posts (!gallery)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Reverse proxies (addresses or networks) whose "
        "X-Forwarded-For names the real client, so the login throttle counts that client, not "
        "the proxy everyone arrives through")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return [entry.strip() for entry in value]


class CommandsConfig(_Section):
    """How chat lines become commands. Go's ``plugins.eventfilter`` keys are read where a key
    here is not set."""

    prefix: str = Field("!", min_length=1, max_length=5,
                        description="What a command starts with (Go: plugins.eventfilter."
                                    "command_prefix)")
    # Cooldown for commands that declare none; 0 leaves them without one (unlike the Go bot:
    # docs/upgrading-from-go.md, "Configuration").
    default_cooldown: float = Field(0.0, ge=0, description="Seconds between two uses of a "
                                    "command by one user, for commands that set none; 0: none")
    notice_interval: float = Field(10.0, ge=0, description="Seconds between two refusal PMs "
                                   "to one user")
    max_line_length: int = Field(1000, ge=16, description="Longer lines are not commands")


class RetentionConfig(_Section):
    """How many days each kind of logged row is kept; 0 keeps it forever. Aggregates
    (analytics, stats, the library) are never pruned."""

    chat_days: int = Field(0, ge=0, description="daz_chat_log rows and chat core events")
    private_messages_days: int = Field(0, ge=0, description="daz_private_messages rows and PM "
                                                            "core events")
    sessions_days: int = Field(0, ge=0, description="Closed usertracker sessions")
    plays_days: int = Field(0, ge=0, description="Finished mediatracker plays")
    media_update_events_days: int = Field(30, ge=0, description="mediaUpdate core events (the "
                                          "position ticks, the bulk of the event log)")
    gallery_health_log_days: int = Field(90, ge=0, description="Gallery image check results")
    batch_size: int = Field(5000, ge=1, le=100_000, description="Rows deleted per statement")
    pause_seconds: float = Field(0.2, ge=0, description="Pause between batches, so other "
                                                        "writers go first")
    interval_hours: float = Field(24, gt=0, description="How often the running bot prunes")
    first_run_minutes: float = Field(10, ge=0, description="First prune after start-up (not "
                                                           "during it)")


class LeaseConfig(_Section):
    """How instances sharing one database share the rooms (docs/scale-out.md)."""

    renew_seconds: float = Field(1.0, gt=0, description="How often an instance renews its "
                                 "leases and looks at the others")
    lease_seconds: float = Field(5.0, gt=0, description="How long a lease lasts without "
                                 "renewal (at least 3 × renew_seconds): how soon the others "
                                 "take the rooms of an instance that died")

    @model_validator(mode="after")
    def _renew_within_lease(self) -> LeaseConfig:
        if self.lease_seconds < 3 * self.renew_seconds:
            raise ValueError("lease_seconds must be at least 3 × renew_seconds")
        return self


class JoinPacingConfig(_Section):
    """Socket connects per server address: CyTube allows 5, then one per 10 s."""

    burst: int = Field(5, ge=1, description="Connects allowed at once")
    interval_seconds: float = Field(10.0, ge=0, description="Then one connect per this many "
                                    "seconds; 0: no pacing (a server without the limit)")


class NatsConfig(_Section):
    """The Kryten bridge (docs/scale-out.md): off while ``url`` is empty."""

    url: str = Field("", description="NATS server, e.g. nats://127.0.0.1:4222 (DAZ_NATS_URL, "
                                     "--nats); empty: no bridge")
    domain: str = Field("", description="The CyTube domain Kryten clients name; default: each "
                                        "room's server host")


class CoreConfig(_Section):
    """Everything that is not a plugin's."""

    rooms: list[RoomConfig] = Field(default_factory=list, description="The channels to join")
    max_rooms: int = Field(0, ge=0, description="Rooms this instance joins at most (several "
                           "instances on one database share the rooms); 0: no cap")
    leases: LeaseConfig = Field(default_factory=LeaseConfig,
                                description="Sharing rooms between instances")
    join_pacing: JoinPacingConfig = Field(default_factory=JoinPacingConfig,
                                          description="How fast rooms are joined")
    nats: NatsConfig = Field(default_factory=NatsConfig, description="The Kryten bridge")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig,
                                     description="PostgreSQL (Go: also plugins.sql.database)")
    data_dir: str = Field("", description="Where daz keeps its files (the journal, web token, "
                          "embedded PostgreSQL) (DAZ_DATA_DIR, --data-dir); default: the "
                          "platform's user data directory")
    admin_users: list[str] = Field(default_factory=list, description="Bot admins: CyTube "
                                   "names, who count only while logged in to a registered "
                                   "account (Go: plugins.eventfilter.admin_users, also read)")
    web: WebConfig = Field(default_factory=WebConfig, description="The web server")
    commands: CommandsConfig = Field(default_factory=CommandsConfig,
                                     description="Command parsing and dispatch")
    stop_timeout_seconds: float = Field(8.0, gt=0, le=600, description="The whole stop "
                                        "(SIGTERM/Ctrl-C to exit), however many plugins are "
                                        "stuck; under Docker's 10 s grace. What the database "
                                        "has not taken by then is saved to disk for the next "
                                        "start")
    journal_max_mb: int = Field(1024, ge=1, description=(
        "Largest size of <data_dir>/journal/, where writes wait while the database is away"
        " (MB); past it new records stay in memory and go to the database as soon as it"
        " answers, as with a full disk"))
    retention: RetentionConfig = Field(default_factory=RetentionConfig,
                                       description="Pruning old logged rows")

    @model_validator(mode="after")
    def _unique_ids(self) -> CoreConfig:
        seen: set[str] = set()
        for room in self.rooms:
            if room.id in seen:
                raise ValueError(f"two rooms have the id {room.id!r}")
            seen.add(room.id)
        return self


class Config(_Section):
    """The whole config file."""

    core: CoreConfig = Field(default_factory=CoreConfig, description="The bot itself")
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="One section per plugin, by plugin name; each is "
        "checked by that plugin's settings model")

    @property
    def enabled_rooms(self) -> list[RoomConfig]:
        return [room for room in self.core.rooms if room.enabled]

    def plugin_section(self, name: str) -> dict[str, Any]:
        section = self.plugins.get(name)
        return dict(section) if isinstance(section, dict) else {}


# ---------------------------------------------------------------------------- loading


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        where = _location(tuple(err.get("loc", ())))
        where = f"{prefix}.{where}" if prefix and where != "(top level)" else (prefix or where)
        lines.append(f"{where}: {err.get('msg')}")
    return "; ".join(lines)


def unknown_keys(model: BaseModel, path: str = "") -> list[str]:
    """Keys the config had that no model declares (plugin sections are checked per plugin)."""
    found = [f"{path}.{k}" if path else k for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        here = f"{path}.{name}" if path else name
        if isinstance(value, BaseModel):
            found += unknown_keys(value, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += unknown_keys(item, f"{here}[{i}]")
    return found


def _merge_database(raw: dict) -> None:
    """Fold plugins.sql.database into core.database (core wins where both set a key)."""
    sql_db = raw.get("plugins", {}).get("sql", {}) if isinstance(raw.get("plugins"), dict) else {}
    if isinstance(sql_db, dict) and isinstance(sql_db.get("database"), dict):
        core = raw.setdefault("core", {})
        if isinstance(core, dict):
            merged = dict(sql_db["database"])
            if isinstance(core.get("database"), dict):
                merged.update({k: v for k, v in core["database"].items() if v not in ("", None, 0)})
            core["database"] = merged


def _env_overrides(raw: dict, env: dict[str, str]) -> None:
    core = raw.setdefault("core", {})
    db = core.setdefault("database", {})
    for var, key, conv in (("DAZ_DB_HOST", "host", str), ("DAZ_DB_PORT", "port", int),
                           ("DAZ_DB_NAME", "database", str), ("DAZ_DB_USER", "user", str),
                           ("DAZ_DB_PASSWORD", "password", str)):
        if env.get(var):
            try:
                db[key] = conv(env[var])
            except ValueError:
                raise ConfigError(f"{var}: expected a number, got {env[var]!r}") from None
    if env.get("DAZ_DATABASE_URL"):
        db["dsn"] = env["DAZ_DATABASE_URL"]
    if env.get("DAZ_DATA_DIR"):
        core["data_dir"] = env["DAZ_DATA_DIR"]
    channel = env.get("DAZ_CYTUBE_CHANNEL")
    if channel and not core.get("rooms"):
        core["rooms"] = [{"id": "default", "channel": channel, "enabled": True,
                          "username": env.get("DAZ_CYTUBE_USERNAME", ""),
                          "password": env.get("DAZ_CYTUBE_PASSWORD", "")}]
    if env.get("DAZ_SERVER_URL"):
        for room in core.get("rooms") or []:
            if isinstance(room, dict):
                room["server_url"] = env["DAZ_SERVER_URL"]
    if env.get("DAZ_NATS_URL"):
        core.setdefault("nats", {})["url"] = env["DAZ_NATS_URL"]
    if env.get("DAZ_WEB_PORT"):
        core.setdefault("web", {})["port"] = env["DAZ_WEB_PORT"]


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """File, then DAZ_* environment, then flags (``overrides``), then validation.

    ``overrides`` keys: channel, username, password, server, dsn, data_dir, web_host, web_port,
    nats.
    """
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {p}: the top level must be an object")
    _merge_database(raw)
    _env_overrides(raw, env)
    _flag_overrides(raw, overrides or {})
    try:
        config = Config.model_validate(without_go_compat_keys(raw, ""))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    for key in unknown_keys(config):
        log.warning("config: unknown key %s (ignored)", key)
    _read_password_files(config, Path(path).parent if path is not None else Path.cwd())
    return config


def password_from_file(path: Path) -> str:
    """The file's first line, without its line ending (spaces belong to the password);
    ValueError saying why when it cannot be read or is empty. A file others may read is
    accepted with a warning: refusing it would stop a bot over a chmod."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read the password file {path}: {reason}") from None
    if not lines or not lines[0]:
        raise ValueError(f"the password file {path} is empty")
    mode = Path(path).stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("the password file %s can be read by other users (mode %o); chmod 600 it",
                    path, mode)
    return lines[0]


def _read_password_files(config: Config, base: Path) -> None:
    for index, room in enumerate(config.core.rooms):
        if room.password or not room.password_file:
            continue
        key = f"core.rooms[{index}].password_file"
        if not room.username:
            raise ConfigError(f"{key}: a password file is set but username is not")
        try:
            room.password = password_from_file(base / Path(room.password_file).expanduser())
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def _flag_overrides(raw: dict, flags: dict[str, Any]) -> None:
    core = raw.setdefault("core", {})
    if not isinstance(core, dict):
        return
    if any(flags.get(k) for k in ("channel", "username", "password")):
        rooms = core.get("rooms")
        if not isinstance(rooms, list) or not rooms:
            rooms = core["rooms"] = [{"enabled": True}]
        first = rooms[0] if isinstance(rooms[0], dict) else {}
        for key in ("channel", "username", "password"):
            if flags.get(key):
                first[key] = flags[key]
        first.setdefault("enabled", True)
    if flags.get("server"):
        for room in core.get("rooms") or []:
            if isinstance(room, dict):
                room["server_url"] = flags["server"]
    if flags.get("dsn"):
        core.setdefault("database", {})["dsn"] = flags["dsn"]
    if flags.get("nats"):
        core.setdefault("nats", {})["url"] = flags["nats"]
    if flags.get("data_dir"):
        core["data_dir"] = str(flags["data_dir"])
    web = core.setdefault("web", {})
    if flags.get("web_host"):
        web["host"] = flags["web_host"]
    if flags.get("web_port") is not None:
        web["port"] = flags["web_port"]


def validate_plugin_config(name: str, model: type[BaseModel], section: dict) -> BaseModel:
    """A plugin's section, validated by its own Config model; errors name plugins.<name>.<key>.
    Go keys the plugin accepts without a field (``GO_COMPAT_KEYS``) are left out first."""
    section = without_go_compat_keys(section, f"plugins.{name}", model.model_fields)
    try:
        cfg = model.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=f"plugins.{name}")) from None
    for key in (cfg.model_extra or {}):
        log.warning("config: unknown key plugins.%s.%s (ignored)", name, key)
    return cfg
