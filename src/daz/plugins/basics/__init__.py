"""basics: the commands every channel expects: !help, !about, !uptime, !ping.

``!help`` answers from the live command registry (every loaded plugin's commands, with the
owner's on/off switches), filtered to what the caller may actually run, so it can never point at
a command that would then be refused. It answers by PM: a command list in public chat is noise
for everyone else.
"""
from __future__ import annotations

import re
import time

from pydantic import Field

import daz
from daz.commands import CommandContext, RegisteredCommand, Subcommand
from daz.commands.dispatch import command_prefix
from daz.plugins.base import Plugin, PluginConfig, command

# A "!" that starts a command word in a usage line or example ("!tell list | !tell cancel").
_BANG = re.compile(r"(?<![\w!])!(?=\w)")


class BasicsConfig(PluginConfig):
    source_url: str = Field("", description="Where people can read the bot's code; shown by "
                                            "!about when set")
    description: str = Field("a bot for this CyTube channel", description="What !about says "
                                                                         "the bot is")


def format_duration(seconds: float, *, with_seconds: bool = True) -> str:
    """``93784`` → ``"1d 2h 3m 4s"``; zero parts are left out, never an empty string."""
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if with_seconds and (secs or not parts):
        parts.append(f"{secs}s")
    return " ".join(parts) or "0m"


class Basics(Plugin[BasicsConfig]):
    name = "basics"
    after = ("sql",)
    description = "Help, about, uptime and ping"

    async def setup(self) -> None:
        # The plugin starts with the process; close enough to "the bot has been up".
        self.started = time.monotonic()
        app = self.ctx.app_config
        self.prefix = command_prefix(app)
        self.base_url = app.core.web.base_url.rstrip("/")

    # ------------------------------------------------------------------ ping

    @command("ping", cooldown=5, description="Check the bot is listening (answers pong)",
             examples=[("!ping", "pong")])
    async def ping(self, ctx: CommandContext) -> None:
        await ctx.reply("pong")

    # ------------------------------------------------------------------ help

    def _visible(self, entry: RegisteredCommand, ctx: CommandContext) -> bool:
        spec = entry.spec
        if not entry.enabled:
            return False
        if ctx.is_admin:
            return True
        return not spec.admin_only and ctx.rank >= spec.min_rank

    @command("help", aliases=("commands",), cooldown=10, reply_to="pm",
             usage="!help [command] [subcommand]",
             description="List the commands you can use, or explain one",
             examples=[("!help ping", "!ping - Check the bot is listening (answers pong)."
                                      " (once per 5s) Example: !ping"),
                       ("!help", re.compile(r"Commands: !about, !help, !ping, !uptime\. .*"))])
    async def help(self, ctx: CommandContext, name: str = "", subcommand: str = "") -> None:
        p = self.prefix
        if name:
            wanted = name.removeprefix(p).lower()
            entry = self.ctx.commands.resolve(wanted) if wanted else None
            if entry is None or not self._visible(entry, ctx):
                await ctx.reply(f"No command called {p}{wanted or name}." if wanted
                                else f"Which command? Try {p}help ping.")
                return
            if subcommand:
                sub = entry.subcommand(subcommand)
                if sub is None or not self._visible_sub(sub, ctx):
                    await ctx.reply(f"{p}{entry.name} has no subcommand {subcommand}.")
                    return
                await ctx.reply(self.describe_subcommand(sub))
                return
            await ctx.reply(self.describe(entry, ctx))
            return
        names = [f"{p}{e.name}" for e in self.ctx.commands.all() if self._visible(e, ctx)]
        text = f"Commands: {', '.join(names)}. {p}help <command> tells more."
        if self.base_url:
            text += f" All commands: {self.base_url}/help"
        await ctx.reply(text)

    def _visible_sub(self, sub: Subcommand, ctx: CommandContext) -> bool:
        return ctx.is_admin or (not sub.spec.admin_only and ctx.rank >= sub.spec.min_rank)

    def shown(self, text: str) -> str:
        """Usage lines and examples are written with ``!``; show them with the real prefix."""
        return text if self.prefix == "!" else _BANG.sub(lambda _: self.prefix, text)

    def describe(self, entry: RegisteredCommand, ctx: CommandContext | None = None) -> str:
        spec = entry.spec
        p = self.prefix
        parts = [self.shown(entry.usage)]
        if spec.description:
            parts.append(f"- {spec.description}.")
        notes = []
        if spec.aliases:
            notes.append("also " + ", ".join(p + a for a in spec.aliases))
        if spec.admin_only:
            notes.append("bot admins only")
        elif spec.min_rank > 0:
            notes.append(f"rank {spec.min_rank:g}+")
        if spec.cooldown:
            notes.append(f"once per {spec.cooldown:g}s")
        if spec.pm_only:
            notes.append("PM only")
        if notes:
            parts.append(f"({'; '.join(notes)})")
        subs = [sub for sub in entry.subcommands if ctx is None or self._visible_sub(sub, ctx)]
        if subs:
            # The usage line shows their arguments already; here what each one does.
            parts.append("Subcommands: " + "; ".join(
                sub.name + (f" - {sub.spec.description}" if sub.spec.description else "")
                for sub in subs) + ".")
        if spec.examples:
            lines = [self.shown(e.line) for e in spec.examples]
            parts.append(f"Example{'s' if len(lines) > 1 else ''}: {' · '.join(lines)}")
        return " ".join(parts).replace("..", ".")

    def describe_subcommand(self, sub: Subcommand) -> str:
        text = self.shown(sub.usage)
        if sub.spec.description:
            text += f" - {sub.spec.description}."
        if sub.spec.admin_only:
            text += " (bot admins only)"
        elif sub.spec.min_rank > 0:
            text += f" (rank {sub.spec.min_rank:g}+)"
        return text

    # ------------------------------------------------------------------ about / uptime

    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started

    @command("about", aliases=("version",), cooldown=10,
             description="What this bot is, its version, and where its code lives",
             examples=[("!about", re.compile(r"daz \S+, a bot for this CyTube channel\. Up .*"))])
    async def about(self, ctx: CommandContext) -> None:
        text = (f"daz {daz.__version__}, {self.config.description}. "
                f"Up {format_duration(self.uptime_seconds(), with_seconds=False)}.")
        if self.base_url:
            text += f" Pages: {self.base_url}/"
        text += (f" Source: {self.config.source_url}" if self.config.source_url
                 else " Free software (MIT).")
        await ctx.reply(text)

    @command("uptime", aliases=("up",), cooldown=10, description="How long the bot has been up",
             examples=[("!uptime", re.compile(r"Up (\d+[dhm] )*\d+s\."))])
    async def uptime(self, ctx: CommandContext) -> None:
        await ctx.reply(f"Up {format_duration(self.uptime_seconds())}.")
