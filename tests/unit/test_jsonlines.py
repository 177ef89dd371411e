"""The shutdown file of held writes and pending retries: appended, read back in order, removed."""
import logging

from daz.db.held import HeldWrites
from daz.db.jsonlines import append_json_lines, take_json_lines

LOG = logging.getLogger("daz.test")


def test_lines_come_back_in_order_and_the_file_is_gone(tmp_path):
    path = tmp_path / "x.jsonl"
    append_json_lines(path, [{"n": 1}, {"n": 2}])
    append_json_lines(path, iter([{"n": 3}]))  # a second shutdown adds to the first
    assert take_json_lines(path, dict, log=LOG, owner="t") == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert not path.exists()
    assert take_json_lines(path, dict, log=LOG, owner="t") == []
    assert take_json_lines(None, dict, log=LOG, owner="t") == []


def test_a_bad_line_is_logged_and_skipped_not_the_rest(tmp_path, caplog):
    path = tmp_path / "x.jsonl"
    path.write_text('{"n": 1}\nnot json\n{"n": 2}\n', encoding="utf-8")
    assert take_json_lines(path, dict, log=LOG, owner="t") == [{"n": 1}, {"n": 2}]
    assert sum("unreadable line" in r.getMessage() for r in caplog.records) == 1


def test_a_held_file_from_before_still_loads(tmp_path, caplog):
    path = tmp_path / "usertracker-held.jsonl"
    path.write_text('{"room": "r", "op": {"op": "join", "t": 1.5}}\n'
                    '{"room": "r"}\n'  # no op: the shape is wrong, skipped
                    '{"room": "s", "op": {"op": "leave", "t": 2.0}}\n', encoding="utf-8")
    held = HeldWrites(plugin="usertracker", db=None, apply=None, log=LOG)
    assert held.load(path) == [("r", {"op": "join", "t": 1.5}), ("s", {"op": "leave", "t": 2.0})]
    assert sum("unreadable line" in r.getMessage() for r in caplog.records) == 1
    assert not path.exists()
