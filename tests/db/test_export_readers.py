"""The datasets' rows as the database drivers read them (ADBC: PostgreSQL in the worker's
process, SQLite in a child process) against the same rows read through SQLAlchemy, on SQLite
and on the machine's real PostgreSQL: same schema, same values, same NULLs, same partitions.

The rows are the awkward ones: text columns NULL for more than a whole first batch (the SQLite
driver guesses a column's type from its first batch), NULL all through, empty text beside
NULL, quotes, newlines and non-ASCII text, times written with other UTC offsets, booleans,
and an outer join's missing side.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import text

from adapters.files import Files
from hub import sqlite_arrow
from hub.datasets import DATASETS, QueryDataset, Window, arrow_reader
from hub.db import session_scope
from hub.models import OrderStateChange
from tests.export_data import add_dead_letter, add_order, add_regulatory_report

BATCH = 3
VIENNA_SUMMER = timezone(timedelta(hours=2))
INDIA = timezone(timedelta(hours=5, minutes=30))
DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def _read(
    dataset: QueryDataset, sessions: Any, window: Window, *, through_rows: bool = False
) -> list[tuple[date, pa.RecordBatch]]:
    pieces: list[tuple[date, pa.RecordBatch]] = []
    async with sessions() as session:
        chunks = (
            dataset.row_chunks(session, window, BATCH)
            if through_rows
            else dataset.chunks(session, Files(), window, BATCH)
        )
        async for chunk in chunks:
            pieces.extend(chunk())
    return pieces


async def _both(dataset_name: str, sessions: Any, window: Window) -> pa.Table:
    """The window's rows by the driver and through SQLAlchemy, checked equal; the table."""
    dataset = DATASETS[dataset_name]
    assert isinstance(dataset, QueryDataset) and dataset.arrow_native
    async with sessions() as session:
        bind = session.get_bind()
        # The driver path is the one taken (a silent fall-back would compare a path to itself).
        statement = dataset._query(window)
        batches = arrow_reader.reader(bind.engine.url, bind.dialect, statement, dataset.schema, 3)
        assert batches is not None
        batches.close()  # type: ignore[attr-defined]
    driver = await _read(dataset, sessions, window)
    rows = await _read(dataset, sessions, window, through_rows=True)
    assert [(day, batch.num_rows) for day, batch in driver] == [
        (day, batch.num_rows) for day, batch in rows
    ]
    for (_, ours), (_, theirs) in zip(driver, rows, strict=True):
        assert ours.schema.equals(dataset.schema, check_metadata=True)
        assert theirs.schema.equals(dataset.schema, check_metadata=True)
        assert ours.equals(theirs), (ours.to_pylist(), theirs.to_pylist())
    return pa.Table.from_batches([batch for _, batch in driver], schema=dataset.schema)


async def _state_changes(sessions: Any, rows: list[dict[str, Any]]) -> str:
    owner = await add_order(sessions, at=DAY1, state="inProgress")
    async with session_scope(sessions) as session:
        session.add_all(
            OrderStateChange(order_id=owner.id, to_state="inProgress", **row) for row in rows
        )
    return owner.id


async def test_state_changes_null_text_first_awkward_text_and_offsets(sessions: Any) -> None:
    # Seven rows with every nullable text column NULL: more than two whole first batches.
    first = [{"at": DAY1 + timedelta(minutes=i)} for i in range(7)]
    later = [
        # 10:00 in Vienna's summer time is 08:00 UTC on the next day; microseconds kept.
        {"at": datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=VIENNA_SUMMER), "item_id": "1",
         "from_state": "acknowledged", "reason": 'said "no"\nthen, yes; ü ✓'},
        {"at": datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC), "item_id": "",
         "from_state": "", "reason": ""},
        # 04:00 in India is 22:30 UTC the day before: partition 2026-03-02, not 03-03.
        {"at": datetime(2026, 3, 3, 4, 0, tzinfo=INDIA), "item_id": "2", "reason": None},
    ]  # fmt: skip
    order_id = await _state_changes(sessions, first + later)
    table = await _both(
        "order_state_changes", sessions, Window(None, datetime(2026, 3, 4, tzinfo=UTC))
    )
    assert table.num_rows == 10
    rows = table.to_pylist()
    assert [row["item_id"] for row in rows] == [None] * 7 + ["1", "2", ""]
    assert [row["from_state"] for row in rows] == [None] * 7 + ["acknowledged", None, ""]
    assert [row["reason"] for row in rows] == [None] * 7 + ['said "no"\nthen, yes; ü ✓', None, ""]
    assert {row["order_id"] for row in rows} == {order_id}
    assert [row["at"] for row in rows[7:]] == [
        datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 3, 2, 22, 30, tzinfo=UTC),
        datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    # The window's bounds with another offset: (00:30 UTC, 22:30 UTC] on 2026-03-02.
    window = Window(
        datetime(2026, 3, 2, 2, 30, tzinfo=VIENNA_SUMMER), datetime(2026, 3, 3, 4, 0, tzinfo=INDIA)
    )
    inside = await _both("order_state_changes", sessions, window)
    assert inside.column("item_id").to_pylist() == ["1", "2"]


async def test_a_column_null_all_through_keeps_its_type(sessions: Any) -> None:
    await _state_changes(sessions, [{"at": DAY1 + timedelta(seconds=i)} for i in range(5)])
    table = await _both("order_state_changes", sessions, Window(None, DAY1 + timedelta(days=1)))
    assert table.column("reason").type == pa.string()
    assert table.column("reason").null_count == 5


async def test_an_empty_window_has_the_schema_and_no_rows(sessions: Any) -> None:
    await _state_changes(sessions, [{"at": DAY1}])
    table = await _both("order_state_changes", sessions, Window(DAY1, DAY1 + timedelta(days=1)))
    assert table.num_rows == 0


async def test_dead_letters_booleans_and_null_times(sessions: Any) -> None:
    await add_dead_letter(sessions, at=DAY1, compensation=True, skippable=False)
    await add_dead_letter(
        sessions,
        at=DAY1 + timedelta(hours=1),
        order_id="o-1",
        skippable=True,
        decided_at=DAY1 + timedelta(hours=2),
        decision="skip",
        decided_by="api-key:operator",
        closed_at=datetime(2026, 3, 1, 14, 0, tzinfo=VIENNA_SUMMER),
        status="resolved",
    )
    table = await _both("dead_letters", sessions, Window(None, DAY1 + timedelta(days=1)))
    rows = table.to_pylist()
    assert [(row["compensation"], row["skippable"]) for row in rows] == [
        (True, False),
        (False, True),
    ]
    assert [row["decided_at"] for row in rows] == [None, DAY1 + timedelta(hours=2)]
    # The change time is the latest of parked, decided and closed: 12:00 UTC (14:00 +02:00).
    assert [row["changed_at"] for row in rows] == [DAY1, datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    assert table.column("attempts").type == pa.int64()


async def test_orders_outer_join_and_submissions(sessions: Any) -> None:
    await add_order(sessions, at=DAY1, state="acknowledged")
    await add_order(sessions, at=DAY1 + timedelta(hours=1), state="completed")
    async with session_scope(sessions) as session:
        # An order without items: the join's item columns are NULL.
        connection = await session.connection()
        await connection.execute(
            text(
                "DELETE FROM service_order_item WHERE order_id IN "
                "(SELECT id FROM service_order WHERE state = 'acknowledged')"
            )
        )
    orders = await _both("orders", sessions, Window(None, DAY1 + timedelta(days=1)))
    assert orders.column("item_id").to_pylist()[0] is None
    assert orders.column("completion_date").to_pylist()[0] is None
    assert orders.column("item_id").to_pylist()[1] is not None

    await add_regulatory_report(sessions, at=DAY1, received_at=None, verdict=None)
    await add_regulatory_report(sessions, at=DAY1 + timedelta(minutes=5), version=2)
    reports = await _both("regulatory_submissions", sessions, Window(None, DAY1 + timedelta(1)))
    assert reports.column("received_at").to_pylist()[0] is None
    assert reports.column("version").to_pylist() == [1, 2]


async def test_a_read_sees_what_the_worker_committed_before_it(sessions: Any) -> None:
    """Each read sees every commit made before it through the worker's own connection (the
    failure that keeps ADBC's SQLite out of the worker's process: a reader that saw the file
    as it was before the other library's commits)."""
    until = DAY1 + timedelta(days=1)
    for round_ in range(1, 4):
        await _state_changes(sessions, [{"at": DAY1 + timedelta(minutes=round_)}])
        table = await _both("order_state_changes", sessions, Window(None, until))
        assert table.num_rows == round_


def _request(database: Path, sql: str) -> sqlite_arrow.ReadRequest:
    return sqlite_arrow.ReadRequest(
        database=str(database),
        names=["n"],
        kinds=["integer"],
        query=sqlite_arrow.Query(sql, []),
        flagged=sqlite_arrow.Query(f"SELECT coalesce(n, 0), n IS NULL FROM ({sql})", []),
        batch_rows=2,
    )


def test_a_child_that_fails_raises_with_its_error(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-database"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(sqlite_arrow.SqliteReadFailed, match="not a database"):
        list(sqlite_arrow.read(_request(garbage, "SELECT 1 AS n")))


def test_a_failure_after_some_batches_is_not_a_short_read(tmp_path: Path) -> None:
    """A read that fails part-way raises (the stream's end alone would look like success)."""
    database = tmp_path / f"{uuid.uuid4().hex}.db"
    sql = (
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 9) "
        "SELECT CASE WHEN i < 5 THEN i ELSE 'text' END AS n FROM s"
    )
    read = sqlite_arrow.read(_request(database, sql))
    assert next(read).column(0).to_pylist() == [1, 2]
    with pytest.raises(sqlite_arrow.SqliteReadFailed, match="mismatch"):
        list(read)


def test_text_parameters_are_bound_in_the_child(tmp_path: Path) -> None:
    """A query with text parameters (no dataset has one yet) binds them in the child, which
    runs without NumPy."""
    import sqlite3

    database = tmp_path / "bound.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (n INTEGER, s TEXT)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a'b"), (2, "c"), (3, "a'b")])
    sql = "SELECT n FROM t WHERE s = ? AND n > ? ORDER BY n"
    request = _request(database, sql)
    request.query = sqlite_arrow.Query(sql, ["a'b", 0])
    batches = list(sqlite_arrow.read(request))
    assert [value for batch in batches for value in batch.column(0).to_pylist()] == [1, 3]
