"""Event parsing alone: ``parse_event`` over the frames a busy room receives, no socket, no bus.

Figures: frames parsed per second for a chat line (the bulk of any room), for a mix of the
common events (chat, joins, leaves, AFK, media updates, queue, ranks), and for a 200-user
userlist (the biggest frame a join brings besides the playlist). The mix and the userlist are
built from the shapes a live server sends. One process, one core; the figures are the best of
several rounds, so another process briefly taking the core shows as less, never as more.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import report, sized
from daz.cytube.events import parse_event

ROUNDS = 5
FRAMES = sized(200_000, 20_000)

CHAT = ("chatMsg", {"username": "alice", "msg": "hello there, bot", "meta": {},
                    "time": 1_700_000_000_000})
MEDIA = {"id": "dQw4w9WgXcQ", "title": "Some video", "seconds": 212, "duration": "03:32",
         "type": "yt", "meta": {}}
MIX = [
    CHAT,
    ("chatMsg", {"username": "bob", "msg": "<a href=\"https://x.example\">link</a>",
                 "meta": {"addClass": "action"}, "time": 1_700_000_000_500}),
    ("addUser", {"name": "carol", "rank": 1, "profile": {"image": "", "text": ""},
                 "meta": {"afk": False, "muted": False}}),
    ("userLeave", {"name": "carol"}),
    ("setAFK", {"name": "alice", "afk": True}),
    ("mediaUpdate", {"currentTime": 42.5, "paused": False}),
    ("usercount", 17),
    ("queue", {"item": {"uid": 12, "media": MEDIA, "temp": True, "queueby": "alice"},
               "after": 11}),
    ("setUserRank", {"name": "bob", "rank": 2}),
    ("changeMedia", {**MEDIA, "currentTime": -3, "paused": True}),
    ("setUserMeta", {"name": "bob", "meta": {"afk": False, "muted": False}}),
    ("emoteList", [{"name": ":)", "image": "x"}]),
]
USERLIST = ("userlist", [{"name": f"user{i}", "rank": i % 4, "profile": {"image": "", "text": ""},
                          "meta": {"afk": i % 7 == 0, "muted": False}} for i in range(200)])


def rate(frames: list[tuple[str, object]], count: int) -> float:
    """Best frames/s over ``ROUNDS`` rounds of ``count`` frames."""
    best = 0.0
    n = len(frames)
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(count):
            name, payload = frames[i % n]
            parse_event(name, payload, room_id="r", channel="c", seq=i, received_at=1.0)
        best = max(best, count / (time.perf_counter() - started))
    return best


def main() -> None:
    print("event parsing (parse_event, no socket, no bus)")
    report("parse chatMsg", rate([CHAT], FRAMES), "events/s", "one core, best of 5")
    report("parse a mix of 12 common events", rate(MIX, FRAMES), "events/s",
           "one core, best of 5")
    report("parse a 200-user userlist", rate([USERLIST], max(200, FRAMES // 200)), "frames/s",
           "one core, best of 5")


if __name__ == "__main__":
    main()
