"""The one parser of a command status's row count."""
import pytest

from daz.db.pool import rows_affected


@pytest.mark.parametrize("status, rows", [
    ("UPDATE 3", 3), ("INSERT 0 5", 5), ("DELETE 0", 0), ("COPY 1000", 1000),
    ("CREATE TABLE", 0), ("", 0), (None, 0),
])
def test_rows_affected(status, rows):
    assert rows_affected(status) == rows


async def test_rows_affected_of_real_statuses(database):
    await database.execute("CREATE TABLE t (n int)")
    assert rows_affected(await database.execute("INSERT INTO t SELECT generate_series(1, 4)")) == 4
    assert rows_affected(await database.execute("UPDATE t SET n = n + 1 WHERE n > 2")) == 2
    assert rows_affected(await database.execute("DELETE FROM t WHERE n > 100")) == 0
