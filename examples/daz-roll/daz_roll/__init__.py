"""``!roll [sides]``: a third-party daz plugin in one file, found through its entry point."""
import random

from daz.commands import CommandContext
from daz.plugins.base import Plugin, command


class Roll(Plugin):
    name = "roll"
    description = "Rolls a die"

    @command("roll", cooldown=3, usage="!roll [sides]", description="Roll a die (default d6)")
    async def roll(self, ctx: CommandContext, sides: str = "6") -> None:
        if not sides.isdigit() or not 2 <= int(sides) <= 1000:
            await ctx.reply("Usage: !roll [sides], with 2 to 1000 sides")
            return
        await ctx.reply(f"{ctx.username} rolls a d{sides}: {random.randint(1, int(sides))}")
