"""The gallery's config section (``plugins.gallery``), validated at start-up."""
from __future__ import annotations

import math
import re
from typing import Any

from pydantic import Field, field_validator

from daz.plugins.base import PluginConfig
from daz.plugins.gallery.detect import DEFAULT_IMAGE_HOSTS

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 10.0  # a check run every few seconds would hammer image hosts


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string like "6h", "30m", "90s", "1h30m".

    A bare number is seconds (not nanoseconds as the Go bot read it: docs/upgrading-from-go.md).
    """
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds or a duration like \"30m\"")
    if isinstance(value, (int, float)):
        return float(value)  # the caller checks the range (and NaN/inf)
    if not isinstance(value, str):
        raise ValueError("must be a number of seconds or a duration like \"30m\"")
    text = value.strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration: use seconds, or e.g. \"6h\", \"30m\", "
                         "\"1h30m\"")
    return total


class GalleryConfig(PluginConfig):
    max_images_per_user: int = Field(25, ge=1, le=100_000, description="Active images a user "
                                     "keeps across channels; the oldest is pruned")
    rate_limit_seconds: float = Field(30.0, ge=0, description="At most one collected image per "
                                      "user in this window")
    enable_health_check: bool = Field(True, description="Check now and then that the images "
                                      "still exist")
    health_check_interval: float = Field(300.0, description="Seconds between checks, or a "
                                         "duration like \"5m\", \"6h\" (at least 10 s)")
    health_check_batch: int = Field(50, ge=1, le=5000, description="Images checked per run")
    recovery_batch: int = Field(10, ge=0, le=5000, description="Dead images re-tried per run")
    manual_check_batch: int = Field(500, ge=1, le=50_000, description="Images checked by "
                                    "!gallery_check")
    health_check_workers: int = Field(5, ge=1, le=50, description="Checks at once")
    recovery_days: int = Field(30, ge=1, le=3650, description="Dead images are re-tried this "
                               "long")
    image_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_IMAGE_HOSTS),
                                   description="Hosts whose links are images without an image "
                                   "extension (matched on the real host name)")
    allowed_ports: list[int] = Field(default_factory=lambda: [80, 443], description="Ports "
                                     "the checker may fetch from")
    request_timeout: float = Field(10.0, gt=0, le=120, description="Seconds one check may take")
    max_redirects: int = Field(3, ge=0, le=10, description="Redirects a check follows")
    unsafe_allow_hosts: list[str] = Field(
        default_factory=list, description="UNSAFE: hosts (\"host\" or \"host:port\") the "
        "checker may reach although they are not public addresses, the one exception to the "
        "SSRF guard (daz sandbox names its own image host here, tests their local servers). "
        "Leave it empty in a real channel")

    @field_validator("health_check_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if not math.isfinite(seconds) or seconds < MIN_INTERVAL:
            raise ValueError(f"must be at least {MIN_INTERVAL:.0f} seconds (got {value!r})")
        return seconds

    @field_validator("allowed_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [p for p in value if not 1 <= p <= 65535]
        if bad or not value:
            raise ValueError(f"ports must be 1-65535 and at least one (got {value})")
        return value
