"""The JetStream KV buckets Kryten clients read: ``kryten_{channel}_{kind}``.

Bucket names use the channel as configured (clients build them so); they are created when
missing with one value per key kept, and left in place when daz stops. A key is written with
its newest value at most every ``FLUSH_SECONDS``: a join burst of 200 users is one write of the
user list, not 200, and a NATS server that is away only delays the writes (every key is written
again on reconnect).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from daz.bridge.mirror import ALL_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from daz.bridge.bridge import KrytenBridge

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1
MIB = 1024 * 1024
MAX_VALUE = {"userlist": MIB, "playlist": 10 * MIB, "emotes": MIB, "state": MIB}
RAW_TEXT = {"motd", "css", "js"}


def bucket_name(channel: str, kind: str) -> str:
    return f"kryten_{channel}_{kind}"


class KvWriter:
    def __init__(self, bridge: KrytenBridge) -> None:
        self.bridge = bridge
        self.dirty: dict[str, set[tuple[str, str]]] = {}  # room id → entries to write
        self.buckets: dict[str, Any] = {}  # bucket name → KeyValue
        self.wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.writes = 0
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bridge:kv")

    async def stop(self) -> None:
        if self._task is not None:
            if self.bridge.connected:
                await self.flush()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def changed(self, room_id: str, entries: tuple[tuple[str, str], ...]) -> None:
        self.dirty.setdefault(room_id, set()).update(entries)
        self.wake.set()

    def rewrite_all(self) -> None:
        """After a (re)connect: the server may have missed writes, or lost its buckets."""
        self.buckets.clear()
        for room_id in self.bridge.mirrors:
            self.dirty.setdefault(room_id, set()).update(ALL_KEYS)
        self.wake.set()

    def pending(self) -> int:
        return sum(len(entries) for entries in self.dirty.values())

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.bridge.connected:
                await self.flush()
            await asyncio.sleep(FLUSH_SECONDS)
            if self.dirty:
                self.wake.set()

    async def flush(self) -> None:
        dirty, self.dirty = self.dirty, {}
        for room_id, entries in dirty.items():
            room = self.bridge.app.rooms.get(room_id)
            mirror = self.bridge.mirrors.get(room_id)
            if room is None or mirror is None:
                continue  # the room left this instance: its next holder writes
            for entry in sorted(entries):
                try:
                    await self._put(room.channel, entry, mirror.value(entry))
                except Exception as exc:
                    self.failures += 1
                    if self.bridge.connected:
                        log.warning("bridge: KV %s/%s for %s not written: %s", *entry,
                                    room.channel, exc)
                    if not self.bridge.connected:  # keep it for the reconnect
                        self.dirty.setdefault(room_id, set()).add(entry)

    async def _put(self, channel: str, entry: tuple[str, str], value: Any) -> None:
        kind, key = entry
        name = bucket_name(channel, kind)
        kv = self.buckets.get(name)
        if kv is None:
            kv = self.buckets[name] = await self._bucket(name, kind)
        if key in RAW_TEXT:
            data = (value or "").encode("utf-8")
        else:
            data = json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
        await kv.put(key, data)
        self.writes += 1

    async def _bucket(self, name: str, kind: str) -> Any:
        from nats.js.api import KeyValueConfig, StorageType
        from nats.js.errors import BucketNotFoundError

        js = self.bridge.nc.jetstream()
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            return await js.create_key_value(KeyValueConfig(
                bucket=name, history=1, storage=StorageType.FILE,
                max_value_size=MAX_VALUE[kind]))
