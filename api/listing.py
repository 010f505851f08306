"""What every list route shares: a filter that must name a known value, and a page of rows
with ``X-Total-Count`` (all that match) and ``X-Result-Count`` (in this page)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from fastapi import Query, Response
from sqlalchemy import func
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import ApiError

Row = TypeVar("Row", bound=SQLModel)

#: Offset paging past two billion rows is not what anyone means; and SQL's OFFSET, a signed
#: 64-bit integer, fails (a 500) from 2**63 on.
MAX_OFFSET = 2**31 - 1
#: Every list route's ``offset``: a 400 outside ``0..MAX_OFFSET``.
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]


def one_of(field: str, value: str | None, choices: type[StrEnum]) -> None:
    """A 400 naming the field and the values it takes, unless ``value`` is one (or None)."""
    if value is not None and value not in {choice.value for choice in choices}:
        known = ", ".join(choice.value for choice in choices)
        raise ApiError(400, f"{field}: unknown {field} {value!r}; one of {known}")


async def page(
    session: AsyncSession,
    model: type[Row],
    conditions: Sequence[Any],
    order_by: Sequence[Any],
    *,
    offset: int,
    limit: int,
    response: Response,
) -> list[Row]:
    """The rows of ``model`` matching every condition, in order, ``offset``/``limit``."""
    total = (await session.exec(select(func.count()).select_from(model).where(*conditions))).one()
    rows = list(
        await session.exec(
            select(model).where(*conditions).order_by(*order_by).offset(offset).limit(limit)
        )
    )
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(rows))
    return rows


def parquet_page(
    path: Path | str,
    schema: pa.Schema,
    expression: pc.Expression | None,
    offset: int,
    limit: int,
    *,
    filesystem: pafs.FileSystem | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """How many rows of the Parquet file(s) at ``path`` (on ``filesystem``, local if none)
    match ``expression``, and the page ``offset``/``limit`` of them, read batch by batch (a
    large file is never loaded whole). Blocking: call it in a thread."""
    dataset = ds.dataset(str(path), filesystem=filesystem, format="parquet", schema=schema)
    total = dataset.count_rows(filter=expression)
    rows: list[dict[str, Any]] = []
    skip = offset
    for batch in dataset.to_batches(filter=expression):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        batch = batch.slice(skip, limit - len(rows))
        skip = 0
        rows += batch.to_pylist()
        if len(rows) >= limit:
            break
    return total, rows
