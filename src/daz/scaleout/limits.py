"""The open-file limit a process with many rooms needs.

Each room holds a websocket, and the process also holds database connections, the web
server's sockets and files; the default soft limit of 1,024 is reached near 900 rooms. At
start daz raises its soft limit toward the hard limit (no privilege needed), to what its rooms
need, and says so when even the hard limit is too low.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

PER_ROOM = 2  # the room's websocket, and one spare for its HTTP discovery and reconnects
BASE = 256  # database pool, lease connection, web server, NATS, log and journal files


def files_needed(rooms: int) -> int:
    return BASE + PER_ROOM * rooms


def raise_open_file_limit(rooms: int) -> tuple[int, int]:
    """Returns (soft limit now, files wanted); never lowers the limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return (0, files_needed(rooms))
    wanted = files_needed(rooms)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open-file limit raised from %d to %d for %d room(s)", soft, target, rooms)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("open-file limit %d is below the %d that %d room(s) need; raise the hard"
                    " limit (ulimit -Hn, LimitNOFILE= in systemd)", soft, wanted, rooms)
    return soft, wanted
