"""examples/daz-roll, installed with pip, is found through its entry point and answers !roll."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from daz.plugins.registry import available_plugins
from tests.plugin_kit import Kit, answers_to_example

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "daz-roll"


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"pip could not install the example plugin:\n{done.stderr[-2000:]}")
    assert list(target.glob("daz_roll-*.dist-info/entry_points.txt"))
    monkeypatch.syspath_prepend(str(target))
    yield target
    for name in [m for m in sys.modules if m == "daz_roll" or m.startswith("daz_roll.")]:
        del sys.modules[name]


async def test_a_plugin_installed_with_pip_is_found_and_runs_its_command(installed_example,
                                                                          database):
    plugins = available_plugins()
    assert "roll" in plugins and plugins["roll"].__module__ == "daz_roll"
    chosen = {name: plugins[name] for name in ("sql", "eventfilter", "roll")}
    kit = await Kit.start(chosen, db=database)
    try:
        kit.user("alice", rank=1)
        await kit.chat("alice", "!roll 20")
        assert len(kit.room.said) == 1
        match = re.fullmatch(r"alice rolls a d20: (\d+)", kit.room.said[0])
        assert match and 1 <= int(match.group(1)) <= 20
        await kit.chat("alice", "!roll")  # inside the 3 s cooldown: refused by PM, not said
        assert len(kit.room.said) == 1
        assert kit.commands.resolve("roll").plugin == "roll"  # listed by !help like any other
        assert kit.commands.resolve("roll").usage == "!roll [sides]"  # from `sides: int = 6`
    finally:
        await kit.stop()


async def test_the_installed_plugins_examples_hold_and_a_bad_number_gets_the_usage_line(
        installed_example, database):
    roll = available_plugins()["roll"]
    [(_, spec)] = roll.declared_commands()
    assert spec.examples
    for example in spec.examples:
        answers = await answers_to_example({"roll": roll}, example, db=database)
        assert answers and example.matches(answers[0][1]), (example, answers)
    kit = await Kit.start({"roll": roll}, db=database)
    try:
        kit.user("alice", rank=1)
        await kit.chat("alice", "!roll many")
        assert kit.room.said == []
        assert kit.room.pms == [("alice", 'Usage: !roll [sides] (sides: "many" is not a whole'
                                          ' number)')]
    finally:
        await kit.stop()
