"""deploy/daz.service: systemd accepts it, and it keeps the promises docs/deploy.md makes (own
user, state in StateDirectory, strict hardening, restart on failure, a stop timeout above daz's
8 s shutdown budget, SIGTERM to daz alone so it stops its embedded PostgreSQL itself)."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "daz.service"
SHUTDOWN_BUDGET_SECONDS = 8


def _service() -> dict[str, list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                       dict_type=dict)
    parser.optionxform = str  # type: ignore[assignment]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return {key: value.split() for key, value in parser["Service"].items()}


def test_the_unit_keeps_its_promises():
    service = _service()
    assert service["User"] == ["daz"] and service["StateDirectory"] == ["daz"]
    assert service["Environment"] and any("DAZ_DATA_DIR=%S/daz" in v
                                          for v in UNIT.read_text().splitlines())
    assert service["ProtectSystem"] == ["strict"]
    assert service["ReadWritePaths"] == ["%S/daz"]
    for flag in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert service[flag] == ["yes"], flag
    assert service["Restart"] == ["on-failure"]
    assert service["KillMode"] == ["mixed"]
    stop = float(service["TimeoutStopSec"][0].rstrip("s"))
    assert SHUTDOWN_BUDGET_SECONDS < stop <= SHUTDOWN_BUDGET_SECONDS + 5
    assert service["ExecStart"][:2] == ["/opt/daz/bin/daz", "run"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # verify checks that ExecStart's program exists: point it at this test's daz.
    here = Path(sys.executable).parent / "daz"
    unit = tmp_path / "daz.service"
    unit.write_text(UNIT.read_text().replace("/opt/daz/bin/daz", str(here)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "daz.service" in line]
    assert complaints == []
