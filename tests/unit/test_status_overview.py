"""``daz status`` from the lease tables (scaleout/overview.py, status_db.py) on rows as the
database returns them: who is alive or stale, which room waits, what counts as healthy."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from daz.scaleout.leases import Wanted
from daz.scaleout.overview import STALE_SHOWN_SECONDS, build_overview
from daz.status_db import render_overview

STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def instance(id_: str, name: str, *, alive: bool = True, age: float = 0.4,
             rooms: dict | None = None, healthy: bool = True) -> dict:
    report = None
    if rooms is not None:
        report = json.dumps({
            "instance": {"host": "box", "pid": int(name.split(":")[1]), "version": "9.9",
                         "state": "running", "healthy": healthy,
                         "problems": [] if healthy else ["plugin x: broke"]},
            "rooms": rooms, "database": {"ok": True},
            "plugins": {"sql": {"running": True, "errors": 0, "queued": 0},
                        "x": {"running": False, "failed": "broke", "errors": 1}},
            "queues": {"bus": 0, "outbox": 1, "eventlog_in_memory": 2, "eventlog_spilled": 3,
                       "spill_file": "/data/eventlog.spill"}})
    return {"id": id_, "name": name, "max_rooms": 0, "web_url": "", "started_at": STARTED,
            "report": report, "alive": alive, "heartbeat_age": age, "uptime": 100.0}


def lease(key: str, room: str, holder: str, name: str, *, live: bool = True) -> dict:
    return {"lease_key": key, "room_id": room, "channel": room, "holder": holder,
            "holder_name": name, "live": live, "epoch": 2, "held_for": 50.0,
            "lapsed_for": -3.0 if live else 7.0}


WANTED = [Wanted("k1", "r1", "r1"), Wanted("k2", "r2", "r2"), Wanted("k3", "r3", "r3")]
JOINED = {"state": "joined", "users": 4, "outbox": 0, "problem": None}


def test_a_killed_instance_is_stale_and_its_unheld_room_waits():
    overview = build_overview(
        "postgresql://db/daz",
        [instance("a" * 36, "box:1", rooms={"r1": JOINED, "r2": JOINED}),
         instance("b" * 36, "box:2", alive=False, age=12.0, rooms={"r3": JOINED})],
        [lease("k1", "r1", "a" * 36, "box:1"), lease("k2", "r2", "a" * 36, "box:1"),
         lease("k3", "r3", "b" * 36, "box:2", live=False)], WANTED)
    assert overview["waiting"] == ["r3"] and not overview["healthy"]
    out = render_overview(overview)
    assert out.splitlines()[0] == ("daz on postgresql://db/daz: 1 instance(s) alive, 1 stale;"
                                   " 2 of 3 room(s) held, 2 joined; NOT healthy")
    stale = next(line for line in out.splitlines() if line.startswith("instance box:2 "))
    assert " STALE " in stale and "last heartbeat 12s ago" in stale
    alive = next(line for line in out.splitlines() if line.startswith("instance box:1 "))
    assert "holds 2: r1, r2" in alive and "failed: x (broke)" in alive
    assert "3 spilled to /data/eventlog.spill" in alive and "outbox 1" in alive
    waiting = next(line for line in out.splitlines() if line.startswith("room r3 "))
    assert " waiting " in waiting and "last held by box:2, whose lease lapsed 7s ago" in waiting


def test_healthy_only_when_every_configured_room_is_held_and_joined():
    rows = [instance("a" * 36, "box:1", rooms={"r1": JOINED, "r2": JOINED, "r3": JOINED})]
    leases = [lease(f"k{i}", f"r{i}", "a" * 36, "box:1") for i in (1, 2, 3)]
    assert build_overview("db", rows, leases, WANTED)["healthy"]
    joining = {**JOINED, "state": "joining", "problem": "connect refused"}
    rows = [instance("a" * 36, "box:1", rooms={"r1": JOINED, "r2": JOINED, "r3": joining})]
    overview = build_overview("db", rows, leases, WANTED)
    assert not overview["healthy"] and overview["waiting"] == []
    assert "connect refused" in render_overview(overview)
    # A room taken since the holder's last report is "held" until the next one says more.
    rows = [instance("a" * 36, "box:1", rooms={"r1": JOINED, "r2": JOINED})]
    overview = build_overview("db", rows, leases, WANTED)
    assert [r["state"] for r in overview["rooms"]] == ["joined", "joined", "held"]
    # An instance that says it is unhealthy makes the whole unhealthy.
    rows = [instance("a" * 36, "box:1", healthy=False,
                     rooms={"r1": JOINED, "r2": JOINED, "r3": JOINED})]
    overview = build_overview("db", rows, leases, WANTED)
    assert not overview["healthy"] and "box:1: plugin x: broke" in render_overview(overview)


def test_no_config_reads_the_lease_rows_and_old_stale_rows_are_only_counted():
    rows = [instance("a" * 36, "box:1", rooms={"r1": JOINED}),
            instance("c" * 36, "box:3", alive=False, age=STALE_SHOWN_SECONDS + 1)]
    overview = build_overview("db", rows, [lease("k1", "r1", "a" * 36, "box:1"),
                                           lease("k9", "r9", "c" * 36, "box:3", live=False)], [])
    assert [i["name"] for i in overview["instances"]] == ["box:1"]
    assert overview["older_stale_instances"] == 1 and overview["waiting"] == ["r9"]
    out = render_overview(overview)
    assert "stale for over an hour not shown" in out and "not in this config" not in out
    assert ": 1 instance(s) alive; 1 of 2 room(s) held, 1 joined; NOT healthy" in out
    # With a config, a leased room it does not name is marked so (and does not count).
    overview = build_overview("db", rows[:1], [lease("k1", "r1", "a" * 36, "box:1"),
                                               lease("k9", "r9", "a" * 36, "box:1")], WANTED[:1])
    assert overview["healthy"] and "not in this config" in render_overview(overview)


def test_an_instance_without_a_report_yet_is_listed_by_its_row():
    overview = build_overview("db", [instance("a" * 36, "host.example:42")],
                              [lease("k1", "r1", "a" * 36, "host.example:42")], WANTED[:1])
    row = next(line for line in render_overview(overview).splitlines()
               if line.startswith("instance "))
    assert "pid 42 on host.example" in row and "no report yet" in row
    assert overview["rooms"][0]["state"] == "held"
