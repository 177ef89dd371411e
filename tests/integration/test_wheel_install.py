"""The wheel carries everything daz needs: built from a clean copy of the sources, installed into
a fresh virtualenv outside the checkout, it migrates a fresh database and runs the sandbox with
its pages, templates and static files.

Speed: the wheel itself is installed by pip from the file; its dependencies are not downloaded
again but taken from the test virtualenv through a .pth line (they are the same versions a fresh
install would resolve, and ``pip check`` proves the wheel's declared requirements are met by
them). ``daz`` itself can only come from the wheel: the test virtualenv holds daz as an editable
install, whose import hook a .pth-added directory does not run.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "daz-cytube"


def _pip(python: Path, *args: str, cwd: Path) -> str:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed_daz(tmp_path_factory) -> Path:
    """The ``daz`` executable of a fresh virtualenv that has only the built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    wheels = work / "wheels"
    _pip(Path(sys.executable), "wheel", "--no-deps", "-q", "-w", str(wheels), str(source),
         cwd=work)
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith("daz_cytube-"), wheel.name

    venv = work / "venv"
    # --without-pip: ensurepip alone takes ~10 s here; the test's own pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    Path(site.strip(), "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    test_pip = Path(sys.executable)
    _pip(test_pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel), cwd=work)
    checked = subprocess.run([str(test_pip), "-m", "pip", "--python", str(python), "check"],
                             capture_output=True, text=True, cwd=work)
    problems = [line for line in checked.stdout.splitlines()
                if line.lower().startswith(DISTRIBUTION)]
    assert not problems, checked.stdout
    where = subprocess.run([str(python), "-c", "import daz; print(daz.__file__)"],
                           capture_output=True, text=True, check=True, cwd=work).stdout.strip()
    assert Path(where).is_relative_to(venv), f"daz imported from {where}, not from the wheel"
    return venv / "bin" / "daz"


def _outside_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAZ_", "PYTHONPATH"))}
    env.update(PYTHONUNBUFFERED="1", HOME=str(tmp))
    return env


def test_the_installed_wheel_migrates_a_fresh_database(installed_daz, fresh_dsn, tmp_path):
    env = _outside_env(tmp_path)
    done = subprocess.run([str(installed_daz), "db", "migrate", "--dsn", fresh_dsn],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "025_retry_persistence.sql" in done.stdout
    assert "gallery/001_baseline.sql" in done.stdout
    assert "core/027_gallery_system.sql" in done.stdout
    again = subprocess.run([str(installed_daz), "db", "migrate", "--dsn", fresh_dsn],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr


def _get(url: str, within: float = 30.0) -> tuple[int, str]:
    """The first 200 answer, or the last answer after ``within`` seconds (the web server is
    rebuilt once at start-up, when the plugins add their pages, so a request may be cut)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answer = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            answer = exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            answer = 0, repr(exc)
        if answer[0] == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.3)


def test_the_installed_wheel_runs_the_sandbox_with_its_pages(installed_daz, fresh_dsn, tmp_path):
    proc = subprocess.Popen(
        [str(installed_daz), "sandbox", "--port", "0", "--web-port", "0", "--dsn", fresh_dsn,
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, env=_outside_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        base = None
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while base is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "daz is running: open " in line:
                base = line.split("open ", 1)[1].split()[0].rsplit("/c/", 1)[0]
        assert base, "".join(seen)
        status, body = _get(base + "/health")
        assert status == 200, body
        status, page = _get(base + "/c/sandbox")
        assert status == 200 and "sandbox" in page
        status, css = _get(base + "/static/daz.css")
        assert status == 200 and "{" in css
        status, page = _get(base + "/gallery/sandbox")
        assert status == 200, page
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        seen.append(out or "")
    assert proc.returncode == 0, "".join(seen)[-3000:]
    assert "Traceback" not in "".join(seen), "".join(seen)[-3000:]
