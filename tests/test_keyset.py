"""config/keyset.py: keyset pages give the same rows in the same order as one ordered query."""

from __future__ import annotations

import ast
import runpy
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.keyset import keyset, keyset_pages
from wallets.models import StripeEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    """Eleven events on four timestamps (ties: the id decides), stored out of order."""
    base = timezone.now()
    offsets = [3, 1, 2, 1, 0, 3, 1, 2, 0, 3, 1]
    return [
        StripeEvent.objects.create(
            event_id=f"evt_{i}", type="x", payload={}, received_at=base + timedelta(seconds=s)
        )
        for i, s in enumerate(offsets)
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 10, 11, 12, 100])
def test_pages_match_one_ordered_query(events, size):
    everything = StripeEvent.objects.all()
    for order in (("received_at", "pk"), ("-received_at", "-pk"), ("received_at", "-pk"), ("pk",)):
        expected = list(everything.order_by(*order).values_list("pk", flat=True))
        assert [e.pk for e in keyset(everything, order=order, size=size)] == expected
    pages = list(keyset_pages(everything, order=("pk",), size=size))
    assert all(len(page) == size for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= size
    assert len(pages) == -(-len(events) // size)


def test_values_list_rows_with_a_key_and_a_filter(events):
    odd = StripeEvent.objects.filter(pk__in=[e.pk for e in events[1::2]])
    rows = keyset(
        odd.values_list("pk", "received_at"),
        order=("-received_at", "pk"),
        size=2,
        key=lambda row: (row[1], row[0]),
    )
    assert list(rows) == list(odd.order_by("-received_at", "pk").values_list("pk", "received_at"))


def test_one_query_a_page_and_no_server_side_cursor(events):
    with CaptureQueriesContext(connection) as queries:
        assert len(list(keyset(StripeEvent.objects.all(), size=4))) == 11
    assert len(queries) == 3  # 4 + 4 + 3: the short last page ends it
    assert all("LIMIT 4" in q["sql"] and "DECLARE" not in q["sql"] for q in queries)


def test_an_empty_result_and_a_bad_size():
    assert list(keyset(StripeEvent.objects.all(), size=3)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(keyset(StripeEvent.objects.all(), size=0))


def test_app_code_uses_no_server_side_cursor():
    """``QuerySet.iterator()`` outside ``atomic()`` breaks behind PgBouncer's transaction
    pooling (and with ``DATABASE_POOL_MODE=transaction`` reads everything at once): the app
    pages with ``config.keyset`` instead. Migrations and tests are exempt."""
    root = Path(__file__).resolve().parent.parent
    apps = [p.parent for p in root.glob("*/apps.py")] + [root / "config"]
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for app in apps
        for path in sorted(app.rglob("*.py"))
        if not {"tests", "migrations"} & set(path.relative_to(app).parts)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "iterator"
    ]
    assert not found, f"QuerySet.iterator() (page with config.keyset instead): {found}"


def test_database_pool_mode_turns_server_side_cursors_off_for_transaction_pooling(monkeypatch):
    settings_py = str(Path(__file__).resolve().parent.parent / "config" / "settings.py")
    monkeypatch.setenv("DATABASE_URL", "postgres://applause@127.0.0.1:5432/applause")
    monkeypatch.delenv("DATABASE_POOL_MODE", raising=False)
    default = runpy.run_path(settings_py)["DATABASES"]["default"]
    assert default["DISABLE_SERVER_SIDE_CURSORS"] is False
    for mode, disabled in (("session", False), ("transaction", True)):
        monkeypatch.setenv("DATABASE_POOL_MODE", mode)
        databases = runpy.run_path(settings_py)["DATABASES"]
        assert databases["default"]["DISABLE_SERVER_SIDE_CURSORS"] is disabled
    monkeypatch.setenv("DATABASE_POOL_MODE", "statement")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_POOL_MODE='statement'"):
        runpy.run_path(settings_py)
