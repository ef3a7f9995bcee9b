"""The gift function's database side (issue #15): every released version stays callable (a
rolling deploy's old code, a rollback), and the rows a gift updates can be updated HOT."""

import pytest
from django.db import connection

from gifts.services.one_statement import GIFT_SEND_FUNCTION

pytestmark = pytest.mark.django_db

# What a gift updates in place (the rest of its rows are inserts): no index may hold these
# columns, or every update writes a new entry into every index of the table.
UPDATED = {
    "wallets_account": {"balance"},
    "gifts_gifttally": {"coins", "diamonds", "gifts"},
    "gifts_dailygiftspend": {"coins"},
}


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the gift function lives in PostgreSQL")


def test_every_released_version_is_in_the_database():
    assert GIFT_SEND_FUNCTION == "gift_send_v4"
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'gift\\_send\\_v%%'")
        names = {row[0] for row in cursor.fetchall()}
    assert {"gift_send_v1", "gift_send_v2", "gift_send_v3", "gift_send_v4"} <= names


@pytest.mark.parametrize("table", sorted(UPDATED))
def test_the_columns_a_gift_updates_are_in_no_index(table):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, a.attname
            FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = %s::regclass
            """,
            [table],
        )
        indexed = cursor.fetchall()
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])
        options = cursor.fetchone()[0] or []
    assert [(index, column) for index, column in indexed if column in UPDATED[table]] == []
    assert "fillfactor=80" in options  # room on the page for the new version
