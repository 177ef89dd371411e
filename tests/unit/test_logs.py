"""Log lines carry their time zone; the JSON form is one object per line with the room and the
plugin a line came from, whoever logged it."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import pytest

from daz.logs import log_context, logging_as, setup_logging


@pytest.fixture
def captured():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()

    def use(log_format: str) -> io.StringIO:
        setup_logging(False, log_format, stream)
        return stream

    yield use
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def _objects(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_text_lines_carry_the_time_zone(captured):
    stream = captured("text")
    logging.getLogger("daz.app").info("hello %s", "there")
    line = stream.getvalue().strip()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 INFO    daz\.app: hello there$",
                    line), line


def test_json_is_one_object_per_line_with_time_zone_level_and_message(captured):
    stream = captured("json")
    logging.getLogger("daz.app").warning("two\nlines %d", 2, extra={"events": 17})
    (entry,) = _objects(stream)
    assert entry["time"].endswith("+00:00")
    assert entry["level"] == "WARNING" and entry["logger"] == "daz.app"
    assert entry["message"] == "two\nlines 2"
    assert entry["events"] == 17
    assert entry["room"] is None and entry["plugin"] is None


def test_a_plugin_logger_names_its_plugin_and_a_tagged_block_its_room(captured):
    stream = captured("json")
    with logging_as(room="lobby"):
        logging.getLogger("daz.plugins.greeter.greetings").info("loaded")
    logging.getLogger("daz.db.pool").info("outside")
    first, second = _objects(stream)
    assert (first["room"], first["plugin"]) == ("lobby", "greeter")
    assert (second["room"], second["plugin"]) == (None, None)


async def test_a_task_started_with_a_log_context_tags_every_line_below_it(captured):
    stream = captured("json")

    async def deep() -> None:
        await asyncio.sleep(0)
        logging.getLogger("daz.plugins.sql.eventlog").info("from a helper the task called")

    async def worker() -> None:
        await asyncio.create_task(deep())  # a task the tagged task starts inherits the tags

    await asyncio.get_running_loop().create_task(
        worker(), context=log_context(room="movies", plugin="sql"))
    logging.getLogger("daz.app").info("the caller is not tagged")
    tagged, untagged = _objects(stream)
    assert (tagged["room"], tagged["plugin"]) == ("movies", "sql")
    assert (untagged["room"], untagged["plugin"]) == (None, None)


def test_an_exception_goes_into_the_object_not_onto_extra_lines(captured):
    stream = captured("json")
    try:
        raise ValueError("bad payload")
    except ValueError:
        logging.getLogger("daz.cytube.intake").exception("frame refused")
    (entry,) = _objects(stream)
    assert entry["level"] == "ERROR"
    assert "ValueError: bad payload" in entry["exception"]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="text, json"):
        setup_logging(False, "xml", io.StringIO())


async def test_a_bus_handler_logs_with_its_room_and_its_plugin(captured):
    from daz.bus import Bus
    from daz.events import RoomConnected

    stream = captured("json")
    bus = Bus()

    async def handler(event) -> None:
        logging.getLogger("daz.commands").info("handled %s", event.topic)

    bus.subscribe(RoomConnected.topic_name, handler, owner="tell")
    await bus.publish(RoomConnected(room_id="lobby", channel="lobby"))
    await bus.drain(5)
    await bus.close()
    (entry,) = [e for e in _objects(stream) if e["message"].startswith("handled")]
    assert (entry["room"], entry["plugin"]) == ("lobby", "tell")
