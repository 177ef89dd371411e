"""Which names may have a tell waiting, per channel, so most chat lines cost no database trip.

A chat line used to run the delivery claim (one pool acquisition and an UPDATE) for every
speaker, which made the tell plugin the largest cost of end-to-end ingest. This hint is the
set of lower-cased recipients that MAY have a pending tell in each channel: a speaker not in
it is not looked up. It may say yes wrongly (a cancelled or expired tell, one delivered by
another process), which costs one lookup; it must not say no wrongly, so:

* a channel that was never loaded, or whose last load failed, is *unknown* and every speaker
  is looked up (a database that was down must not make daz skip deliveries);
* a tell stored by this process is added at once; tells stored by another process sharing the
  database arrive with the next periodic reload (joins are always looked up, so those are
  never missed on a join);
* a name is dropped only after a claim that found nothing or sent everything, and only if no
  tell for it was stored here after that claim began (``mark``/``settled``); a reload keeps
  the names added while its query ran, for the same reason.

The claim in the database stays the only authority on delivery; this only decides whether to
ask.
"""
from __future__ import annotations


class RecipientHint:
    def __init__(self) -> None:
        self._names: dict[str, set[str]] = {}  # channel -> names; a missing channel is unknown
        self._seq = 0
        self._stored: dict[tuple[str, str], int] = {}  # (channel, name) -> seq of its last store

    def mark(self) -> int:
        """Taken before a query; stores recorded after it are newer than what the query saw."""
        return self._seq

    def may_have(self, channel: str, name: str) -> bool:
        names = self._names.get(channel)
        return names is None or name.lower() in names

    def known(self, channel: str) -> bool:
        return channel in self._names

    def stored(self, channel: str, name: str) -> None:
        """A tell for ``name`` was committed by this process."""
        self._seq += 1
        key = (channel, name.lower())
        self._stored[key] = self._seq
        names = self._names.get(channel)
        if names is not None:
            names.add(key[1])

    def settled(self, channel: str, name: str, since: int) -> None:
        """A claim begun at ``since`` left nothing pending for ``name``."""
        key = (channel, name.lower())
        if self._stored.get(key, 0) > since:
            return  # stored while the claim ran: the claim may not have seen it
        self._stored.pop(key, None)
        names = self._names.get(channel)
        if names is not None:
            names.discard(key[1])

    def load(self, channel: str, names: set[str], since: int) -> None:
        """The database's pending recipients, from a query begun at ``since``."""
        fresh = set()
        for key, seq in list(self._stored.items()):
            if key[0] != channel:
                continue
            if seq > since:
                fresh.add(key[1])
            else:
                del self._stored[key]  # the query saw it: the database answers for it now
        self._names[channel] = {n.lower() for n in names} | fresh

    def forget(self, channel: str) -> None:
        """Unknown again: every speaker in the channel is looked up until the next load."""
        self._names.pop(channel, None)
