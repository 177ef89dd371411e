"""The retry queue's own Prometheus series, registered once per daz process (per registry)."""
from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import Counter, Gauge, Histogram

from daz.metrics import own_series


def retry_metrics(metrics) -> SimpleNamespace:
    """Counters on the app's registry; a plugin restart in the same process reuses them."""
    return own_series(metrics, "retry", lambda registry: SimpleNamespace(
        events=Counter("daz_retry_operations_total",
                       "Retry queue transitions (queued, held, lost, succeeded, retried, "
                       "dead_letter, reclaimed)", ["plugin", "outcome"], registry=registry),
        held=Gauge("daz_retry_held_in_memory",
                   "Operations held in memory because the database is down",
                   registry=registry),
        seconds=Histogram("daz_retry_run_seconds", "Time to run one retried operation",
                          ["plugin"], registry=registry)))
