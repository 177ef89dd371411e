"""``daz --help`` lists each command with its whole description (the first paragraph of its
docstring), not its first sentence cut at the terminal width with "…" as click does by default.
The wrapping is kept: a long description goes on over the next lines."""
from __future__ import annotations

import inspect

import click


def whole_description(command: click.Command) -> str:
    if command.short_help:
        return command.short_help
    text = inspect.cleandoc(command.help or "").split("\f", 1)[0]
    return " ".join(text.split("\n\n", 1)[0].split())


class WholeHelpGroup(click.Group):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, whole_description(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
