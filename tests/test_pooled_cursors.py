"""The app's bulk reads through a real PgBouncer in transaction pooling (#23, #16).

``QuerySet.iterator()`` on PostgreSQL reads through a server-side cursor: outside a
transaction Django declares it ``WITH HOLD`` and fetches from it statement by statement,
and in transaction pooling each of those statements may run on another server connection,
where the cursor does not exist (``InvalidCursorName``; the Celery payout batch failed so
again and again). The bulk reads page with keysets instead (``config/keyset.py``).

A child process (``tests/pooled_child.py``) runs the app with ``DATABASE_URL`` pointing at a
PgBouncer in transaction pooling with several server connections lent in turn
(``server_round_robin``), so that its consecutive transactions land on different server
connections as they do on a busy pool; the lock connection (``DATABASE_DIRECT_URL``) goes
straight to PostgreSQL, as docs/operations.md says. A plain ``.iterator()`` fails there
(the check that this set-up catches the bug), unless ``DATABASE_POOL_MODE=transaction``.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import ExitStack

import psycopg
import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from gifts.combos import tracker_at
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from memberships.models import EventKind, MembershipEvent
from memberships.tests.factories import join, make_tier
from payouts.models import Payout, PayoutStatementLine, PayoutStatus
from payouts.tests.factories import VALID_IBAN, give_available_diamonds, make_payout_creator
from tests.helpers import LineChild, postgres_url
from tests.pgbouncer import PgBouncer, pgbouncer_binary
from wallets.models import Account, AccountKind, Discrepancy, StripeEvent
from wallets.services import account_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

POOL = 4


class Child(LineChild):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("tests.pooled_child", env, timeout=120)
        assert json.loads(self.read_line()) == {"ok": "ready"}

    def __call__(self, *command: object) -> object:
        """The command's answer; fails the test with the child's error if it raised."""
        answer = self.raw(*command)
        assert "error" not in answer, f"{command[0]}: {answer['error']}"
        return answer["ok"]

    def raw(self, *command: object) -> dict:
        return json.loads(self.send_line(" ".join(str(part) for part in command)))


def _warm(url: str) -> None:
    """Make PgBouncer open all its server connections: POOL clients in a transaction at once."""
    with ExitStack() as stack:
        for _ in range(POOL):
            conn = stack.enter_context(psycopg.connect(url, autocommit=False))
            conn.execute("SELECT 1")
        # Every one is in its transaction now, each on a server connection of its own.


@pytest.fixture
def pooled():
    """Start a child through a PgBouncer in transaction pooling: ``pooled(**env)``."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (scripts/with_services.sh installs it)")
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)
    with ExitStack() as stack:
        bouncer = stack.enter_context(
            PgBouncer(
                host=host,
                port=port,
                user=db["USER"],
                mode="transaction",
                pool=POOL,
                round_robin=True,
            )
        )
        url = postgres_url(host="127.0.0.1", port=bouncer.port, settings_dict=db)
        _warm(url)

        def start(**extra: str) -> Child:
            # PYTEST_XDIST_WORKER kept: the child uses this worker's own Redis database.
            env = dict(os.environ)
            env.pop("DATABASE_POOL_MODE", None)
            env.update(
                DJANGO_SETTINGS_MODULE="config.settings",
                APPLAUSE_TESTING="1",
                SECRET_KEY=os.environ.get("SECRET_KEY") or "x" * 50,
                DATABASE_URL=url,
                DATABASE_DIRECT_URL=postgres_url(host=host, port=port, settings_dict=db),
                CONN_MAX_AGE="60",
                **extra,
            )
            child = Child(env)
            stack.callback(child.close)
            return child

        yield start


def _gift(sender, creator, gift) -> int:
    return gift_send(
        sender=sender,
        creator_handle=creator.handle,
        gift_slug=gift.slug,
        quantity=1,
        live_id="live1",
        client_key=str(uuid.uuid4()),
    ).pk


def test_bulk_reads_work_through_transaction_pooling(pooled):
    from staff.tests.factories import staff_user

    child = pooled()
    # The set-up catches the bug: a server-side cursor held across transactions is lost.
    assert "does not exist" in child.raw("iterate").get("error", "")

    # The payout batch as the worker runs it (set-based), then one by one (statement_allocate
    # per payout), each over a few creators: payouts, ledger moves and statement lines.
    first = [make_payout_creator(4000 + 100 * i) for i in range(3)]
    assert "3 payouts created" in child("batch")
    later = [make_payout_creator(3000), make_payout_creator(0)]
    for _ in range(5):
        give_available_diamonds(later[1].user, 700)
    assert "2 payouts created" in child("batch_one_by_one")
    assert PayoutStatementLine.objects.filter(payout__creator=later[1]).count() == 5
    payouts = {p.creator_id: p for p in Payout.objects.select_related("creator__user")}
    assert [payouts[c.pk].diamonds for c in first + later] == [4000, 4100, 4200, 3000, 3500]
    for payout in payouts.values():
        lines = PayoutStatementLine.objects.filter(payout=payout)
        assert sum(line.diamonds for line in lines) == payout.diamonds
        assert (
            account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=payout.creator.user).balance == 0
        )

    # The manual rail's bank CSV export, streamed: every selected payout, in id order.
    finance = staff_user(is_superuser=True)
    ids = sorted(p.pk for p in payouts.values())
    rows = child("export", finance.pk, ",".join(map(str, ids)))
    assert rows[0][:5] == ["payout_id", "creator", "account_holder", "iban", "amount"]
    assert [int(row[0]) for row in rows[1:]] == ids
    for row in rows[1:]:
        payout = Payout.objects.select_related("creator").get(pk=row[0])
        assert payout.status in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING)
        assert row[1:6] == [
            payout.creator.handle,
            "Ada Lovelace",
            VALID_IBAN,
            str(payout.amount.amount),
            str(payout.amount.currency),
        ]

    # Hot-account rollups: every hot account (each creator's pending diamonds among them).
    hot = Account.objects.filter(is_hot=True)
    assert hot.count() > 3  # more than one page of the child's three
    assert child("rollup") == hot.count()
    assert not hot.filter(checkpoint_at__isnull=True).exists()

    # Reconciliation's failed webhook events: each one a discrepancy.
    for i in range(3):
        StripeEvent.objects.create(event_id=f"evt_failed_{i}", type="charge.refunded", payload={})
    assert child("reconcile") in ("done", "failed")
    assert Discrepancy.objects.filter(kind="webhook_event_failed").count() == 3

    # A live stream's combos resumed after a reconnect.
    rose = GiftFactory(slug="rose", name="Rose", coins=1)
    streamer = make_creator("streamer")
    alice = fund(UserFactory(username="alice"), 1000)
    sent = [_gift(alice, streamer, rose) for _ in range(4)]
    expected = sorted(
        [c.combo_id, c.count, c.hits, c.coins]
        for c in tracker_at(creator_id=streamer.pk, live_id="live1", upto_id=sent[-1]).open.values()
    )
    assert expected == [[sent[0], 4, 4, 4]]
    assert child("tracker", streamer.pk, "live1", sent[-1]) == expected

    # A tier's price change: a notice to each member.
    tier = make_tier(streamer, coins=100)
    members = [fund(UserFactory(), 1000) for _ in range(3)]
    for member in members:
        join(member, streamer, tier)
    assert child("tier", tier.pk, streamer.user.pk, 150) == "updated"
    notices = MembershipEvent.objects.filter(kind=EventKind.PRICE_CHANGE, tier=tier)
    assert sorted(n.membership.member_id for n in notices.select_related("membership")) == sorted(
        m.pk for m in members
    )


def test_database_pool_mode_transaction_makes_a_plain_iterator_safe(pooled):
    make_payout_creator(4000)
    child = pooled(DATABASE_POOL_MODE="transaction")
    assert child("iterate") == 0
    assert child("batch").startswith("run_payouts: batch #")
    assert child("iterate") == 1
