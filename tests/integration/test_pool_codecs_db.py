"""json/jsonb through the shared pool: Python values in and out, in binary form (the event log
COPYs jsonb in binary), and already-encoded ``JsonText`` sent as it is, never encoded twice."""
from __future__ import annotations

from daz.db.pool import JsonText

VALUE = {"msg": "héllo ✓ 🎉", "n": 3, "nested": [1, None, True], "empty": {}}


async def test_json_and_jsonb_round_trip_python_values(database):
    for type_name in ("jsonb", "json"):
        back = await database.fetchval(f"SELECT $1::{type_name}", VALUE)
        assert back == VALUE, type_name
        assert await database.fetchval(f"SELECT $1::{type_name}", [1, "two"]) == [1, "two"]
        assert await database.fetchval(f"SELECT $1::{type_name}", "just text") == "just text"


async def test_json_text_is_stored_as_the_json_it_holds(database):
    text = JsonText('{"msg": "héllo 🎉", "time": 1700000000000}')
    for type_name in ("jsonb", "json"):
        assert await database.fetchval(f"SELECT $1::{type_name} ->> 'msg'", text) == "héllo 🎉"
    # A plain str is a JSON string value, not JSON text.
    assert await database.fetchval("SELECT jsonb_typeof($1::jsonb)", str(text)) == "string"
    assert await database.fetchval("SELECT jsonb_typeof($1::jsonb)", text) == "object"
