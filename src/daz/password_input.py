"""Where the bot's CyTube password comes from, so that it never has to be on the command line
(where ``ps`` and shell history show it to everyone on the machine).

In order: ``--password`` / ``DAZ_CYTUBE_PASSWORD`` (the flag is kept for scripts; the variable
is the quiet form), ``--password-file`` / ``DAZ_CYTUBE_PASSWORD_FILE`` (its first line), the
room's ``password`` in the config file, and last a prompt when daz runs on a terminal. A room
with a username and no password anywhere, off a terminal, logs in as a guest with that name.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from daz.config import Config, password_from_file

log = logging.getLogger(__name__)


class PasswordFileError(ValueError):
    pass


def read_password_file(path: Path) -> str:
    """The file's first line without its line ending (spaces are part of the password)."""
    try:
        return password_from_file(path)
    except ValueError as exc:
        raise PasswordFileError(str(exc)) from None


def prompt_missing_passwords(config: Config, *, ask: Callable[[str], str] | None = None,
                             interactive: bool | None = None) -> int:
    """Ask on the terminal for every enabled room that has a username but no password; returns
    how many were asked. An empty answer keeps the guest login."""
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        return 0
    if ask is None:
        import click

        def ask(text: str) -> str:
            return click.prompt(text, hide_input=True, default="", show_default=False,
                                err=True)
    asked = 0
    for room in config.enabled_rooms:
        if room.username and not room.password:
            room.password = ask(f"CyTube password for {room.username} on {room.server_url}"
                                f" (empty: log in as a guest)")
            asked += 1
    return asked
