"""Signals always work (issue 11 §1, §2), with real ``daz`` processes.

* SIGTERM and SIGINT while the database does not answer at start-up (refused, or a server that
  accepts and never replies): daz stops within 2 s, exit 0, no traceback. It used to ignore
  both (the handler set an event the start-up did not wait on); only SIGKILL stopped it.
* Ctrl-C on ``daz sandbox`` (the fake server, scripted users and daz in one process): exit 0,
  no traceback (python-socketio's SIGINT handler used to cancel every task: a 40-line
  CancelledError). Ctrl-C on ``daz run`` is in test_shutdown_e2e.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import wait_until

STOPPED_WITHIN = 2.0


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def blackhole() -> tuple[asyncio.base_events.Server, int, list]:
    """A TCP server that accepts and never answers (a database host that hangs)."""
    held: list = []

    async def accept(reader, writer):
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], held


async def spawn(args: list[str], log_path: Path) -> asyncio.subprocess.Process:
    with open(log_path, "wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daz.cli", *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def stop_and_time(proc, sig: int, timeout: float = 15.0) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(
            f"still running {timeout}s after {signal.Signals(sig).name}") from None
    return rc, time.monotonic() - started


@pytest.mark.parametrize("database", ["refused", "hangs"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_stops_a_start_up_waiting_for_the_database(tmp_path, sig, database):
    server, held = None, []
    if database == "refused":
        dsn = f"postgresql://root@127.0.0.1:{closed_port()}/daz"
    else:
        server, port, held = await blackhole()
        dsn = f"postgresql://root@127.0.0.1:{port}/daz"
    log_path = tmp_path / "daz.log"
    proc = await spawn(["run", "--channel", "somechan", "--server", "http://127.0.0.1:9",
                        "--dsn", dsn, "--data-dir", str(tmp_path / "data"),
                        "--web-port", "0"], log_path)
    try:
        if database == "refused":  # retrying with backoff
            await wait_until(lambda: "database: cannot connect" in log_path.read_text(
                errors="replace") or proc.returncode is not None, 30, "a failed attempt")
        else:  # inside a connect attempt that would last connect_timeout (10 s)
            await wait_until(lambda: held or proc.returncode is not None, 30, "a connect")
            await asyncio.sleep(0.5)
        assert proc.returncode is None, log_path.read_text()
        rc, seconds = await stop_and_time(proc, sig)
        text = log_path.read_text(errors="replace")
        assert rc == 0, text[-3000:]
        assert seconds < STOPPED_WITHIN, f"{seconds:.1f}s\n{text[-3000:]}"
        assert "Traceback" not in text, text[-3000:]
        assert "start-up abandoned" in text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if server is not None:
            server.close()


async def test_ctrl_c_stops_the_sandbox_cleanly(tmp_path, migrated_dsn):
    log_path = tmp_path / "sandbox.log"
    proc = await spawn(["sandbox", "--port", "0", "--dsn", migrated_dsn, "--data-dir",
                        str(tmp_path / "data"), "--web-port", "0"], log_path)
    try:
        await wait_until(lambda: "daz is running" in log_path.read_text(errors="replace")
                         or proc.returncode is not None, 60, "the sandbox running")
        await asyncio.sleep(2.0)  # scripted users chat; the bot is connected and writing
        assert proc.returncode is None, log_path.read_text()
        rc, _seconds = await stop_and_time(proc, signal.SIGINT)
        text = log_path.read_text(errors="replace")
        assert rc == 0, text[-3000:]
        assert "Traceback" not in text and "CancelledError" not in text, text[-3000:]
        assert "stopped in" in text
    finally:
        with contextlib.suppress(ProcessLookupError):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
