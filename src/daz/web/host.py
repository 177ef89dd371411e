"""What the web server reads from the daz it serves: the narrow interface between the two.

``daz.app.App`` provides it (by having these attributes; nothing to register), and a test or a
benchmark can serve the pages from any small object that has them, with no App, no database
and no rooms connected. The pages get it from the request (``request.app[HOST]``, web/keys.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from daz.bus import Bus
    from daz.commands import CommandRegistry
    from daz.config import Config
    from daz.cytube.rooms import Rooms
    from daz.db.pool import Database
    from daz.metrics import Metrics


class RoomsElsewhere(Protocol):
    """Which daz instance holds a channel this one does not (scaleout/holder.py)."""

    @property
    def name(self) -> str:
        """This instance, as the index page names it."""

    def elsewhere(self, channel: str) -> tuple[str, str] | None:
        """(instance name, its web address or "") of the instance holding ``channel``, None when
        no instance does."""


@runtime_checkable
class WebHost(Protocol):
    """Everything the web server and its pages use; see the module docstring."""

    @property
    def config(self) -> Config:
        """Channels listed on the pages, the web settings, the command prefix."""

    @property
    def rooms(self) -> Rooms:
        """The rooms this process is in: their state for the dashboards, status for /metrics."""

    @property
    def commands(self) -> CommandRegistry:
        """The command list of /help."""

    @property
    def metrics(self) -> Metrics:
        """What /metrics renders."""

    @property
    def bus(self) -> Bus:
        """Events for the live dashboards; queue depths for /status."""

    @property
    def db(self) -> Database | None:
        """The database the pages query; None until it is connected."""

    @property
    def state(self) -> str:
        """created / starting / running / stopping / stopped, for /health/live and /ready."""

    @property
    def data_dir(self) -> Path:
        """Where the web login token is kept."""

    @property
    def started_at(self) -> float:
        """Epoch seconds, for /status."""

    @property
    def embedded(self) -> object | None:
        """The embedded PostgreSQL when daz runs its own (only whether there is one is read)."""

    @property
    def holder(self) -> RoomsElsewhere | None:
        """The room leases, when several daz instances share the channels."""

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details) as /health reports them; also refreshes sampled gauges."""

    async def sample_gauges(self) -> bool:
        """Refresh the sampled gauges for /metrics (True when the database answers)."""
