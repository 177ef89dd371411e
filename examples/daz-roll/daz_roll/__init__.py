"""``!roll [sides]``: a third-party daz plugin in one file, found through its entry point."""
import random
import re

from daz.commands import CommandContext
from daz.plugins.base import Plugin, command


class Roll(Plugin):
    name = "roll"
    description = "Rolls a die"

    @command("roll", cooldown=3, description="Roll a die (default d6)",
             examples=[("!roll 20", re.compile(r"alice rolls a d20: \d+"))])
    async def roll(self, ctx: CommandContext, sides: int = 6) -> None:
        if not 2 <= sides <= 1000:
            await ctx.reply("A die has 2 to 1000 sides.")
            return
        await ctx.reply(f"{ctx.username} rolls a d{sides}: {random.randint(1, sides)}")
