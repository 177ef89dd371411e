"""Every example of every command of every plugin (``@command(examples=...)``) runs as written.

The examples are what ``!help <command>`` shows, so a command whose answers drift from its
examples fails here rather than misleading people in chat. Each example runs in a Kit with only
the plugin that declares it, on a freshly migrated database: what an example needs besides that
(a bot admin, someone else in the room) it declares itself (``Example(admin=, present=, pm=)``).
"""
from __future__ import annotations

import pytest

from daz.commands import parse_command
from daz.plugins.registry import available_plugins, builtin_plugins
from tests.plugin_kit import answers_to_example


def _examples():
    for name, cls in sorted(available_plugins().items()):
        for _, spec in sorted(cls.declared_commands(), key=lambda item: item[1].name):
            for example in spec.examples:
                yield pytest.param(cls, spec, example, id=f"{name}: {example.line}")


def test_every_builtin_command_has_an_example():
    bare = [f"{name}: !{spec.name}" for name, cls in sorted(builtin_plugins().items())
            for _, spec in cls.declared_commands() if not spec.examples]
    assert bare == []


@pytest.mark.parametrize("cls,spec,example", list(_examples()))
async def test_example(database, tmp_path, cls, spec, example):
    parsed = parse_command(example.line)
    assert parsed is not None and parsed.name in (spec.name, *spec.aliases), (
        f"the example {example.line!r} is not a line for !{spec.name}")
    answers = await answers_to_example({cls.name: cls}, example, db=database, data_dir=tmp_path)
    assert answers, f"{example.line!r} got no answer"
    where, first = answers[0]
    assert example.matches(first), (
        f"{example.line!r} was answered ({where}) {first!r}, the example says {example.reply!r}")
