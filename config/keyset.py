"""Reading a large result in pages without a server-side cursor: keyset pagination.

``QuerySet.iterator()`` on PostgreSQL reads through a server-side cursor. Outside a
transaction Django declares it ``WITH HOLD`` and fetches from it in later statements, which
PgBouncer's transaction pooling may send to another server connection, where the cursor does
not exist (``InvalidCursorName`` / ``portal "_django_curs_…" does not exist``; issue #23).
``keyset(queryset, order=…, size=…)`` (or ``keyset_pages``, a list a page) instead runs one
short query per page,
``WHERE (key) > (last key) ORDER BY key LIMIT size``, and yields the rows one by one: at most
one page in memory, on any connection (pooled or not, in a transaction or not), and with an
index on the key each page starts where the last one ended, however deep into the result.

The ordering fields together must be unique (end with ``pk``) and never NULL. A row changed
or inserted while the pages are read is seen once or not at all, as with any read that spans
several statements; rows before the last key are never read twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.db.models import Q, QuerySet

_Row = TypeVar("_Row")


def _after(order: Sequence[str], last: Sequence[Any]) -> Q:
    """Rows after ``last`` in ``order``: ``(a > x) OR (a = x AND b > y) OR …`` ("-b": b < y)."""
    condition = Q()
    equal: dict[str, Any] = {}
    for field, value in zip(order, last, strict=True):
        name = field.removeprefix("-")
        lookup = "lt" if field.startswith("-") else "gt"
        condition |= Q(**equal, **{f"{name}__{lookup}": value})
        equal[name] = value
    return condition


def keyset_pages(
    queryset: QuerySet[Any, _Row],
    *,
    order: Sequence[str] = ("pk",),
    size: int,
    key: Callable[[_Row], Sequence[Any]] | None = None,
) -> Iterator[list[_Row]]:
    """The rows of ``queryset`` in ``order``, one list of at most ``size`` rows a query.

    ``key`` gives a row's values of the ``order`` fields (by default the model instance's
    attributes of those names: pass it for ``values_list`` rows).
    """
    if size < 1:
        raise ValueError("size must be at least 1")

    def attributes(row: Any) -> Sequence[Any]:
        return [getattr(row, field.removeprefix("-")) for field in order]

    last_key = key or attributes
    ordered = queryset.order_by(*order)
    page = ordered
    while True:
        rows = list(page[:size])
        if rows:
            yield rows
        if len(rows) < size:
            return
        page = ordered.filter(_after(order, last_key(rows[-1])))


def keyset(
    queryset: QuerySet[Any, _Row],
    *,
    order: Sequence[str] = ("pk",),
    size: int,
    key: Callable[[_Row], Sequence[Any]] | None = None,
) -> Iterator[_Row]:
    """Every row of ``queryset`` in ``order``, read ``size`` rows a query (``keyset_pages``)."""
    for rows in keyset_pages(queryset, order=order, size=size, key=key):
        yield from rows
