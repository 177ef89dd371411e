"""A real ``daz run`` process against the fake CyTube server, for the start-up and memory
benchmarks: its config file, its start, the wait for /health 200 (database up and every room
joined) and its RSS read from /proc."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

BOT_NAME = "dazbot"
BOT_PASSWORD = "dazbot-pw"


def daz_command() -> list[str]:
    wrapper = os.environ.get("DAZ_BENCH_WRAPPER")  # a script that runs daz.cli, for profiling
    if wrapper:
        return [sys.executable, wrapper]
    script = Path(sys.executable).with_name("daz")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from daz.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_server(server, channels: list[str]) -> None:
    server.add_account(BOT_NAME, BOT_PASSWORD)
    for channel in channels:
        server.set_channel_rank(channel, BOT_NAME, 2)


def write_config(path: Path, server_url: str, dsn: str, channels: list[str],
                 web_port: int, *, core: dict | None = None,
                 plugins: dict | None = None) -> Path:
    """``core`` keys are merged into the core section, ``plugins`` is the plugins section."""
    raw = {
        "core": {
            "rooms": [{"id": ch, "channel": ch, "username": BOT_NAME, "password": BOT_PASSWORD,
                       "enabled": True, "server_url": server_url} for ch in channels],
            "database": {"dsn": dsn, "max_connections": 10},
            # A fixed token: the generated one would be printed into the benchmark output.
            "web": {"enabled": True, "host": "127.0.0.1", "port": web_port,
                    "token": "benchmark-only-token"},
            # The benchmarks lift the fake server's connect limit; paced as for a real server
            # (one connect per 10 s after 5), a 20-room start would measure the pacing.
            "join_pacing": {"interval_seconds": 0},
        },
        "plugins": plugins or {},
    }
    raw["core"].update(core or {})
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


class DazProcess:
    def __init__(self, config: Path, data_dir: Path, web_port: int, log_path: Path):
        self.config, self.data_dir, self.web_port = config, data_dir, web_port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log = open(self.log_path, "ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [*daz_command(), "run", "--config", str(self.config), "--data-dir",
             str(self.data_dir), "--web-port", str(self.web_port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    async def wait_healthy(self, timeout: float = 120.0) -> float:
        """Seconds from start until /health answers 200 (every room joined)."""
        url = f"http://127.0.0.1:{self.web_port}/health"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daz run exited with {self.proc.returncode}; "
                                       f"see {self.log_path}")
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            return time.perf_counter() - self.started
                except (TimeoutError, aiohttp.ClientError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"daz run not healthy after {timeout}s; see "
                                       f"{self.log_path}")
                await asyncio.sleep(0.01)

    def rss_mib(self, field: str = "VmRSS") -> float:
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine goes away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.log.close()

    async def health(self) -> dict:
        """/health's body (any status), or {} while it does not answer."""
        url = f"http://127.0.0.1:{self.web_port}/health"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
                async with http.get(url) as response:
                    return await response.json()
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return {}

    async def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.proc.returncode
