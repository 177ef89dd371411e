"""Room.is_self: the one answer to "is this name the bot?", and the test fake agrees with it."""
import pytest

from daz.bus import Bus
from daz.config import RoomConfig
from daz.cytube.room import Room
from tests.fakes.room import RecordingRoom


def make_room(username: str) -> Room:
    config = RoomConfig(channel="testchan", username=username, password="pw" if username else "",
                        enabled=True, server_url="http://127.0.0.1:1")
    return Room(config, Bus())


def test_before_login_the_configured_name_is_the_bot_in_any_case():
    room = make_room("DazBot")
    assert room.is_self("dazbot") and room.is_self("DAZBOT")
    assert not room.is_self("dazbot2") and not room.is_self("alice")


def test_after_login_the_name_the_server_gave_counts_too():
    room = make_room("dazbot")
    room.state.bot_name = "Dazbot_"  # the server may hand out another spelling
    assert room.is_self("dazbot_") and room.is_self("DAZBOT_")
    assert not room.is_self("alice")


def test_an_anonymous_room_has_no_self():
    room = make_room("")
    assert not room.is_self("") and not room.is_self("anyone")


@pytest.mark.parametrize("name,expected", [("daz", True), ("DAZ", True), ("dazz", False),
                                           ("", False)])
def test_the_recording_room_answers_like_the_real_one(name, expected):
    assert RecordingRoom(bot_name="Daz").is_self(name) is expected
    assert make_room("Daz").is_self(name) is expected
