"""``daz init``: ask what daz needs to run in a channel, check every answer against the CyTube
server (and the database) and only then write ``config.json`` and the password file.

The password never goes into config.json: it is written to a file only its owner may read
(0600) that the config names in each room's ``password_file``; with ``--password-file`` the
config names that file instead. Nothing is written when a check fails: interactively the
question is asked again, with ``--non-interactive`` daz init stops with one line saying why.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from daz import setup_checks as checks
from daz.config import DEFAULT_SERVER, password_from_file
from daz.private_files import open_private

PASSWORD_FILE_NAME = "cytube-password"


@dataclass
class Answers:
    server: str = DEFAULT_SERVER
    channels: list[str] = field(default_factory=list)
    username: str = ""
    password: str = ""
    password_file: Path | None = None  # given: referenced as it is, not written
    admins: list[str] = field(default_factory=list)
    dsn: str = ""  # empty: the embedded PostgreSQL
    data_dir: Path | None = None
    web_port: int | None = None


class Refused(click.ClickException):
    """One line saying which answer is wrong; nothing has been written."""


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


# ---------------------------------------------------------------------------- the checks


def problem_with_names(answers: Answers) -> str | None:
    for channel in answers.channels:
        if problem := checks.check_name("channel name", channel, checks.CHANNEL_NAME, 30):
            return problem
    for name in [answers.username, *answers.admins]:
        if problem := checks.check_name("user name", name, checks.USER_NAME, 20):
            return problem
    return None


async def problem_with_server(answers: Answers) -> checks.JoinResult:
    """Reachable (socketconfig), every channel registered, the login accepted in each."""
    for channel in answers.channels:
        socket_url, problem = await checks.check_server(answers.server, channel)
        if problem:
            return checks.JoinResult(problem, "server")
        assert socket_url is not None
        joined = await checks.check_join(socket_url, answers.server, channel, answers.username,
                                         answers.password)
        if joined.problem:
            return joined
    return checks.JoinResult()


async def problem_with_database(answers: Answers) -> str | None:
    return await checks.check_database(answers.dsn) if answers.dsn else None


def check_all(answers: Answers) -> None:
    """Raise Refused with the first problem found (later checks are not made then)."""
    if not answers.channels:
        raise Refused("give at least one channel (--channel)")
    if not answers.username or not answers.password:
        raise Refused("the bot needs an account: give --username and its password (--password,"
                      " DAZ_CYTUBE_PASSWORD or --password-file)")
    for check in (lambda: problem_with_names(answers),
                  lambda: asyncio.run(problem_with_server(answers)).problem,
                  lambda: asyncio.run(problem_with_database(answers))):
        if problem := check():
            raise Refused(problem)


# ---------------------------------------------------------------------------- asking


def _ask_until_good(ask: Callable[[], None], problem: Callable[[], str | None]) -> None:
    while True:
        ask()
        found = problem()
        if not found:
            return
        click.echo(f"  {found}", err=True)


def ask_interactively(answers: Answers) -> None:
    def ask_where() -> None:
        answers.server = click.prompt("CyTube server", default=answers.server).rstrip("/")
        answers.channels = _split(click.prompt(
            "Channel(s), separated by spaces", default=" ".join(answers.channels) or None))

    def where_problem() -> str | None:
        if not answers.channels:
            return "give at least one channel"
        if problem := problem_with_names(Answers(channels=answers.channels, username="x")):
            return problem
        for channel in answers.channels:
            if problem := asyncio.run(checks.check_server(answers.server, channel))[1]:
                return problem
        return None

    ask_password = not answers.password
    while True:  # where, then who; a channel the server does not have goes back to where
        _ask_until_good(ask_where, where_problem)
        while True:
            answers.username = click.prompt("Bot account name",
                                            default=answers.username or None)
            if problem := checks.check_name("user name", answers.username, checks.USER_NAME,
                                            20):
                click.echo(f"  {problem}", err=True)
                continue
            if ask_password:
                answers.password = click.prompt(f"Password of {answers.username}",
                                                hide_input=True)
            joined = asyncio.run(problem_with_server(answers))
            if joined.problem is None:
                click.echo(f"  {answers.username} logs in to {', '.join(answers.channels)}",
                           err=True)
                break
            click.echo(f"  {joined.problem}", err=True)
            ask_password = True
            if joined.about != "login":
                break
        if joined.problem is None:
            break

    def ask_admins() -> None:
        answers.admins = _split(click.prompt("Admins (CyTube names, separated by spaces; empty:"
                                             " none)", default=" ".join(answers.admins),
                                             show_default=bool(answers.admins)))

    _ask_until_good(ask_admins, lambda: problem_with_names(
        Answers(channels=[], username=answers.username, admins=answers.admins)))

    given = [answers.dsn]  # the --dsn value is offered once; a refused URL is not offered again

    def ask_database() -> None:
        answers.dsn = click.prompt("PostgreSQL URL (empty: an embedded PostgreSQL in the data"
                                   " directory)", default=given.pop() if given else "",
                                   show_default=False)

    _ask_until_good(ask_database, lambda: asyncio.run(problem_with_database(answers)))


# ---------------------------------------------------------------------------- writing


def _write_private(path: Path, text: str) -> None:
    """Create (or replace) ``path`` readable by its owner only, from the first byte on."""
    with open_private(path, "w") as out:
        out.write(text)


def config_document(answers: Answers, password_file: str) -> dict:
    rooms = [{"id": channel, "channel": channel, "server_url": answers.server,
              "username": answers.username, "password_file": password_file, "enabled": True}
             for channel in answers.channels]
    core: dict = {"rooms": rooms, "admin_users": answers.admins}
    if answers.dsn:
        core["database"] = {"dsn": answers.dsn}
    if answers.data_dir is not None:
        core["data_dir"] = str(answers.data_dir)
    if answers.web_port is not None:
        core["web"] = {"port": answers.web_port}
    return {"core": core, "plugins": {}}


def write(answers: Answers, config_path: Path) -> Path:
    """Write the password file (unless one was given) and config.json; returns the password
    file's path. A relative ``password_file`` is read relative to the config's folder."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    if answers.password_file is not None:
        secret = answers.password_file.resolve()
        reference = str(secret)
    else:
        secret = config_path.parent / PASSWORD_FILE_NAME
        _write_private(secret, answers.password + "\n")
        reference = PASSWORD_FILE_NAME
    text = json.dumps(config_document(answers, reference), indent=2) + "\n"
    if answers.dsn and ":" in answers.dsn.split("@", 1)[0].split("//", 1)[-1]:
        _write_private(config_path, text)  # the DSN carries a database password
    else:
        config_path.write_text(text, encoding="utf-8")
    return secret


# ---------------------------------------------------------------------------- the command


@click.command("init")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="config.json", show_default=True, help="Where to write the config.")
@click.option("--server", default=DEFAULT_SERVER, show_default=True,
              help="CyTube server address.")
@click.option("--channel", "channels", multiple=True,
              help="Channel the bot joins (repeatable, or several separated by spaces).")
@click.option("--username", default="", help="The bot's CyTube account.")
@click.option("--password", envvar="DAZ_CYTUBE_PASSWORD", default="",
              help="Its password (visible to ps: prefer DAZ_CYTUBE_PASSWORD, --password-file"
                   " or the prompt). Written to a 0600 file next to the config.")
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Read the password from the first line of this file; the config then"
                   " names this file instead of a copy.")
@click.option("--admin", "admins", multiple=True,
              help="CyTube name of a bot admin (repeatable).")
@click.option("--dsn", default="", help="PostgreSQL URL; default: an embedded PostgreSQL in the"
                                        " data directory.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="daz's data directory, written into the config (default: the platform's).")
@click.option("--web-port", type=int, help="Port of the web pages (default 8080).")
@click.option("--non-interactive", is_flag=True,
              help="Ask nothing: take every answer from the options, check them, write or stop"
                   " with one line saying what is wrong.")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
def init(config_path: Path, server: str, channels: tuple[str, ...], username: str,
         password: str, password_file: Path | None, admins: tuple[str, ...], dsn: str,
         data_dir: Path | None, web_port: int | None, non_interactive: bool,
         force: bool) -> None:
    """Ask for the CyTube server, channels, bot account, admins and database, check each
    answer against the server, then write config.json and a 0600 password file."""
    answers = Answers(server=server.rstrip("/"), channels=_split(" ".join(channels)),
                      username=username, password=password, password_file=password_file,
                      admins=_split(" ".join(admins)), dsn=dsn, data_dir=data_dir,
                      web_port=web_port)
    if password_file is not None and not password:
        try:
            answers.password = password_from_file(password_file)
        except ValueError as exc:
            raise Refused(f"password file: {exc}") from None
    if config_path.exists() and not force and (
            non_interactive or not click.confirm(f"{config_path} exists. Replace it?")):
        raise Refused(f"{config_path} exists; give --force to replace it (nothing written)")
    if non_interactive:
        check_all(answers)
    else:
        ask_interactively(answers)  # checks each answer as it is given
    secret = write(answers, config_path)
    click.echo(f"wrote {config_path} ({len(answers.channels)} room(s)) and the password to"
               f" {secret} (readable by you only)")
    click.echo(f"start the bot with: daz run --config {config_path}")
