"""Chat and PMs on the fake CyTube server: the length cut, escaping, the channel's chat filters,
links, greentext, the chat commands, and the flood throttle with its ``cooldown`` replies
(all as a live server does them)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daz.sandbox.chat_format import cut_utf16, is_valid_user_name, js_number, strip_control, to_html
from daz.sandbox.fake_channel import FakeChannel, Member
from daz.sandbox.fake_users import kick, set_afk
from daz.sandbox.limits import as_number

if TYPE_CHECKING:
    from daz.sandbox.fake_cytube import FakeCytubeServer

MIN_ANTIFLOOD = {"burst": 20, "sustained": 10}


def chat(server: FakeCytubeServer, channel: FakeChannel, member: Member, msg: str,
         client_meta: Any) -> None:
    msg = cut_utf16(msg, server.max_chat_length)
    if not channel.options.get("allow_ascii_control"):
        msg = strip_control(msg)
    if not msg.strip() or not member.logged_in:
        return
    _process(server, channel, member, msg, _modflair(member, client_meta))


def _modflair(member: Member, client_meta: Any) -> dict:
    if (member.rank >= 2 and isinstance(client_meta, dict)
            and client_meta.get("modflair") == member.rank):
        return {"modflair": client_meta["modflair"]}
    return {}


def _throttled(server: FakeCytubeServer, channel: FakeChannel, member: Member,
               flood: dict) -> bool:
    burst, sustained = as_number(flood.get("burst"), 10.0), as_number(flood.get("sustained"), 2.0)
    if sustained <= 0:
        sustained = 2.0
    if not member.throttle.should_drop(burst, sustained, flood.get("cooldown")):
        return False
    server.send(member.sid, "cooldown", js_number(1000 / sustained))
    channel.dropped[(member.name or "").lower()] += 1
    return True


def _process(server: FakeCytubeServer, channel: FakeChannel, member: Member, msg: str,
             meta: dict) -> None:
    if "/afk" not in msg:
        set_afk(server, channel, member, False)
    now = server.clock.millis()
    flood = MIN_ANTIFLOOD
    if channel.options.get("chat_antiflood") and member.rank < 2:
        params = channel.options.get("chat_antiflood_params")
        flood = params if isinstance(params, dict) else MIN_ANTIFLOOD
    if _throttled(server, channel, member, flood):
        return
    if msg.startswith(">"):
        meta["addClass"] = "greentext"
    if msg.startswith("/"):
        command = COMMANDS.get(msg[1:].split(" ", 1)[0])
        if command is not None:
            command(server, channel, member, msg, meta)
            return
    if member.muted:
        server.send(member.sid, "noflood", {"action": "chat",
                                            "msg": "You have been muted on this channel."})
        return
    html = channel_html(channel, msg)
    line = {"username": member.name, "msg": html, "meta": meta, "time": now}
    server.broadcast(channel, "chatMsg", line)
    channel.history.append(line)
    channel.chat_log.append({"username": member.name, "text": msg, "msg": html,
                             "meta": dict(meta), "time": now})


def channel_html(channel: FakeChannel, msg: str) -> str:
    """``msg`` as this channel broadcasts it: escaped, filtered, links made."""
    return to_html(msg, convert_links=bool(channel.options.get("enable_link_regex", True)),
                   filters=channel.filters)


def _rest(msg: str) -> str:
    return " ".join(msg.split(" ")[1:])


def _me(server, channel, member, msg, meta) -> None:
    meta.update({"addClass": "action", "action": True})
    _process(server, channel, member, _rest(msg), meta)


def _spoiler(server, channel, member, msg, meta) -> None:
    meta["addClass"] = "spoiler"
    _process(server, channel, member, _rest(msg), meta)


def _say(server, channel, member, msg, meta) -> None:
    if member.rank < 1.5:
        return
    meta.update({"addClass": "shout", "addClassToNameAndTimestamp": True, "forceShowName": True})
    _process(server, channel, member, _rest(msg), meta)


def _clear(server, channel, member, msg, meta) -> None:
    if member.rank >= channel.permissions.get("chatclear", 2):
        channel.history.clear()
        server.broadcast(channel, "clearchat")


def _afk(server, channel, member, msg, meta) -> None:
    set_afk(server, channel, member, not member.afk)


def _kick(server, channel, member, msg, meta) -> None:
    parts = msg.split(" ")
    if member.rank < channel.permissions.get("kick", 1.5) or len(parts) < 2:
        return
    target = channel.find(parts[1])
    if target is None or target.rank >= member.rank:
        return
    kick(server, channel, target, " ".join(parts[2:]) or f"Kicked by {member.name}")


def _swallow(server, channel, member, msg, meta) -> None:
    """Moderation commands the fake does not model; the real server never echoes them."""


COMMANDS: dict[str, Callable] = {
    "me": _me, "sp": _spoiler, "say": _say, "rcv": _say, "shout": _say, "clear": _clear,
    "afk": _afk, "kick": _kick, "a": _swallow, "mute": _swallow, "smute": _swallow,
    "unmute": _swallow, "unsmute": _swallow,
}


def pm(server: FakeCytubeServer, channel: FakeChannel, member: Member, msg: str, to: str,
       client_meta: Any) -> None:
    error = lambda text: server.send(member.sid, "errorMsg", {"msg": text})  # noqa: E731
    if not member.logged_in:
        error("You must be signed in to send PMs")
        return
    to_lower = to.lower()
    if to_lower == (member.name or "").lower():
        error("You can't PM yourself!")
        return
    if not is_valid_user_name(to_lower):
        error(f"PM failed: {to_lower} isn't a valid username.")
        return
    if _throttled(server, channel, member, MIN_ANTIFLOOD):
        return
    msg = cut_utf16(msg, server.max_chat_length)
    target = channel.find(to_lower)
    if target is None:
        error(f"PM failed: {to_lower} isn't connected to this channel.")
        return
    meta = _modflair(member, client_meta)
    if msg.startswith(">"):
        meta["addClass"] = "greentext"
    html = channel_html(channel, msg)
    now = server.clock.millis()
    line = {"username": member.name, "msg": html, "meta": meta, "time": now, "to": target.name}
    server.send(target.sid, "pm", line)
    server.send(member.sid, "pm", line)
    server.pm_log.append({"channel": channel.name, "from": member.name, "to": target.name,
                          "text": msg, "msg": html, "time": now})
