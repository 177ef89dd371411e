"""Event models declared by table: every table names real attributes, a new model registers
itself by subclassing, a second model for the same CyTube event is refused, and the readers
keep the forgiving rules (a wrong type becomes the default and is named in ``malformed``)."""
from dataclasses import dataclass, fields

import pytest

from daz.cytube import events as ev
from daz.cytube.event_fields import bare_number, table, text, whole

R = dict(room_id="r", channel="testchan")


@pytest.mark.parametrize("name", sorted(ev.EVENT_TYPES))
def test_every_table_entry_is_an_attribute_of_its_model(name):
    model = ev.EVENT_TYPES[name]
    attributes = {f.name for f in fields(model)}
    assert model.name == name and model.fields
    assert set(model.fields) <= attributes, set(model.fields) - attributes
    assert hasattr(model, "__slots__")  # the registered class is the slotted one


def test_a_new_model_registers_by_subclassing_and_parses_through_its_table():
    try:
        @dataclass(slots=True, kw_only=True)
        class DrinkCount(ev.CytubeEvent):
            name = "drinkCount"
            fields = table(count=bare_number("drinkCount", 0, int))

            count: int = 0

        assert ev.EVENT_TYPES["drinkCount"] is DrinkCount
        e = ev.parse_event("drinkCount", 3, **R)
        assert isinstance(e, DrinkCount) and e.count == 3 and e.malformed is None
        bad = ev.parse_event("drinkCount", "many", **R)
        assert bad.count == 0 and bad.malformed == "drinkCount: expected a number, got 'many'"
    finally:
        ev.EVENT_TYPES.pop("drinkCount", None)
    assert isinstance(ev.parse_event("drinkCount", 3, **R), ev.OtherEvent)


def test_a_second_model_for_one_event_is_refused_by_name():
    with pytest.raises(TypeError, match=r"'chatMsg' already has a model.*ChatMessage"):
        @dataclass(slots=True, kw_only=True)
        class MyChat(ev.CytubeEvent):
            name = "chatMsg"
            fields = table(msg=text("msg"))

            msg: str = ""
    assert ev.EVENT_TYPES["chatMsg"] is ev.ChatMessage


def test_problems_are_named_in_table_order_and_the_event_is_kept():
    e = ev.parse_event("setPlaylistMeta", {"count": "x", "rawTime": [], "time": {}}, **R)
    assert (e.count, e.raw_time, e.time_text) == (0, 0, "")
    assert e.malformed == ("count: expected a number, got 'x'; rawTime: expected a number,"
                           " got list; time: expected text, got dict")


def test_a_chat_time_of_the_wrong_type_is_reported_too():
    e = ev.parse_event("chatMsg", {"username": "a", "msg": "hi", "meta": {}, "time": "soon"}, **R)
    assert e.time == 0 and e.text == "hi" and e.malformed == "time: expected a number, got 'soon'"


def test_short_forms_and_bare_payloads():
    assert ev.parse_event("delete", 7, **R).uid == 7
    assert ev.parse_event("delete", {"uid": 8}, **R).uid == 8
    assert ev.parse_event("queueFail", "nope", **R).msg == "nope"
    assert ev.parse_event("setMotd", {"motd": "hi"}, **R).motd == "hi"
    motd = ev.parse_event("setMotd", 5, **R)
    assert motd.motd == "" and motd.malformed == "expected text, got int"
    locked = ev.parse_event("setPlaylistLocked", 1, **R)
    assert not locked.locked and locked.malformed == "expected true/false, got int"
    users = ev.parse_event("userlist", {"name": "x"}, **R)
    assert users.users == [] and users.malformed == "expected a list, got dict"
    assert ev.parse_event("cooldown", -5, **R).milliseconds == 0


def test_a_non_object_change_media_is_named_once():
    assert ev.parse_event("changeMedia", None, **R).malformed == "expected an object, got NoneType"


def test_a_table_with_an_impossible_attribute_name_is_refused():
    from daz.cytube.event_fields import compile_parser

    with pytest.raises(TypeError, match="'not valid'"):
        compile_parser(table(**{"not valid": whole("x")}), short_form=None,
                       derive=None, model="Broken")
