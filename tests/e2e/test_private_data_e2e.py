"""Private data stays private, through real ``daz run`` processes against the fake CyTube server
(issue 11 §7): the bot logs in with a password that was never on its command line, whether it
came from --password-file, DAZ_CYTUBE_PASSWORD or a prompt on a terminal; the data directory is
0700 and what daz wrote in it 0600, even under a permissive umask."""
from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import stat
import sys
import termios
from pathlib import Path

import pytest

from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, wait_until
from tests.e2e.support import CHANNEL


def _controlling_terminal() -> None:
    """In the child: a session of its own with the pty on stdin as its terminal, so that
    getpass talks to it as it would to a person's terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def run_daz(server, dsn: str, data_dir: Path, source: str):
    args = [sys.executable, "-m", "daz.cli", "run", "--channel", CHANNEL, "--username", BOT_NAME,
            "--server", server.base_url, "--dsn", dsn, "--data-dir", str(data_dir),
            "--web-port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAZ_")}
    env["PYTHONUNBUFFERED"] = "1"
    stdin, preexec, master = asyncio.subprocess.DEVNULL, None, None
    if source == "file":
        secret = data_dir.parent / "bot-password"
        secret.write_text(BOT_PASSWORD + "\n")
        secret.chmod(0o600)
        args += ["--password-file", str(secret)]
    elif source == "env":
        env["DAZ_CYTUBE_PASSWORD"] = BOT_PASSWORD
    else:
        master, slave = pty.openpty()
        stdin, preexec = slave, _controlling_terminal
    log = open(data_dir.parent / f"daz-{source}.log", "wb")
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=stdin, stdout=log, stderr=log, env=env, preexec_fn=preexec,
        umask=0o022)
    log.close()
    if master is not None:
        os.close(slave)
        prompt = b""
        os.set_blocking(master, False)
        for _ in range(300):  # the prompt, read from the terminal as a person would see it
            await asyncio.sleep(0.1)
            try:
                prompt += os.read(master, 4096)
            except BlockingIOError:
                pass
            if b"password" in prompt.lower():
                break
        assert b"CyTube password for " + BOT_NAME.encode() in prompt, prompt
        os.write(master, BOT_PASSWORD.encode() + b"\n")
    return proc, master


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("source", ["file", "env", "prompt"])
async def test_the_bot_logs_in_with_a_password_that_ps_never_shows(fake_server, migrated_dsn,
                                                                    tmp_path, source):
    fake_server.add_account(BOT_NAME, BOT_PASSWORD)
    fake_server.set_channel_rank(CHANNEL, BOT_NAME, 2)
    data_dir = tmp_path / "data"
    proc, master = await run_daz(fake_server, migrated_dsn, data_dir, source)
    log = tmp_path / f"daz-{source}.log"
    try:
        # A registered name is only let in with its password: a guest may not take it.
        await wait_until(lambda: fake_server.channel(CHANNEL).find(BOT_NAME) is not None
                         or proc.returncode is not None, 30, "the bot to log in")
        assert proc.returncode is None, log.read_text()
        command_line = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert BOT_PASSWORD.encode() not in command_line
        await wait_until(lambda: (data_dir / "web-token").exists(), 10, "the web token")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if master is not None:
            os.close(master)
    assert mode(data_dir) == 0o700
    written = [p for p in data_dir.iterdir() if p.is_file()]
    assert written, "daz wrote nothing in its data directory"
    for path in written:
        assert mode(path) == 0o600, (path, oct(mode(path)))
    assert BOT_PASSWORD not in log.read_text()
