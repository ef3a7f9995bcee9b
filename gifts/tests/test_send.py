import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import MinorFactory, UserFactory
from config.errors import DomainError
from gifts.models import DailyGiftSpend, GiftEvent, GiftTally
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from wallets.models import Account, AccountKind, Entry, LedgerTransaction, TransactionKind
from wallets.services import account_balance, wallet_freeze, wallet_get

# Every rule runs against the SQL function and the Python reference (conftest.gift_path).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gift_path")]


@pytest.fixture
def rose():
    return GiftFactory(slug="rose", name="Rose", coins=1)


@pytest.fixture
def lion():
    return GiftFactory(slug="lion", name="Lion", coins=300)


@pytest.fixture
def creator():
    return make_creator("star")


@pytest.fixture
def sender():
    return fund(UserFactory(), 1000)


def send(sender, **kw):
    args = {"creator_handle": "star", "gift_slug": "rose", "quantity": 1}
    args.update(kw)
    args.setdefault("client_key", str(uuid.uuid4()))
    return gift_send(sender=sender, **args)


def pending(creator):
    return account_balance(Account.objects.get(pk=creator.pending_account_id))


def test_gift_moves_coins_and_diamonds(sender, creator, lion):
    event = send(sender, gift_slug="lion", quantity=2, live_id="live-1", message="gg <b>wp</b>")
    assert event.created
    assert event.coins == 600
    assert event.diamonds == 600
    assert event.wallet_coins == 400
    assert wallet_get(user=sender).balance == 400
    assert pending(creator) == 600
    assert event.message == "gg wp"
    assert event.live_id == "live-1"
    tx = event.transaction
    assert tx.kind == TransactionKind.GIFT
    assert tx.idempotency_key.startswith(f"gift:{sender.pk}:")
    tally = GiftTally.objects.get(creator=creator, sender=sender)
    assert (tally.coins, tally.diamonds, tally.gifts) == (600, 600, 1)
    assert DailyGiftSpend.objects.get(user=sender).coins == 600


def test_rate_from_settings(settings, sender, creator, lion):
    settings.DIAMONDS_PER_COIN_NUM, settings.DIAMONDS_PER_COIN_DEN = 1, 2
    event = send(sender, gift_slug="lion", quantity=1)
    assert (event.coins, event.diamonds) == (300, 150)
    assert pending(creator) == 150


def test_repeated_key_is_the_same_gift(sender, creator, rose):
    first = send(sender, client_key="k1")
    again = send(sender, client_key="k1", quantity=5)
    assert again.pk == first.pk
    assert again.created is False
    assert GiftEvent.objects.count() == 1
    assert wallet_get(user=sender).balance == 999


def test_repeated_key_answers_even_if_the_gift_expired_since(sender, creator, rose):
    first = send(sender, client_key="k1")
    rose.available_until = timezone.now() - timedelta(seconds=1)
    rose.save()
    assert send(sender, client_key="k1").pk == first.pk


def test_a_key_another_transaction_holds_spends_nothing(sender, creator, rose):
    # The gift's ledger key already names a journal row that is not a gift's: refused before
    # any other write (the journal insert is the first), and nothing else is written.
    LedgerTransaction.objects.create(
        kind=TransactionKind.GRANT, idempotency_key=f"gift:{sender.pk}:taken"
    )
    entries = Entry.objects.count()
    error = _refused("validation_error", sender, client_key="taken")
    assert str(error) == "This client key was already used."
    assert Entry.objects.count() == entries
    assert not DailyGiftSpend.objects.exists()
    assert not GiftTally.objects.exists()
    assert send(sender, client_key="free").created  # the next key sends as usual


def test_gifts_the_same_day_add_up(sender, creator, rose, lion):
    # The second and third gift update the tally and the daily spend rows (HOT updates in v4).
    send(sender, gift_slug="lion")
    send(sender, quantity=3)
    event = send(sender, gift_slug="lion")
    tally = GiftTally.objects.get(creator=creator, sender=sender)
    assert (tally.coins, tally.diamonds, tally.gifts) == (603, 603, 3)
    assert DailyGiftSpend.objects.get(user=sender).coins == 603
    assert event.wallet_coins == wallet_get(user=sender).balance == 397
    assert pending(creator) == 603


def _refused(code, sender, **kw):
    before = (
        GiftEvent.objects.count(),
        LedgerTransaction.objects.filter(kind="gift").count(),
        wallet_get(user=sender).balance if sender.pk else None,
    )
    with pytest.raises(DomainError) as info:
        send(sender, **kw)
    assert info.value.code == code
    after = (
        GiftEvent.objects.count(),
        LedgerTransaction.objects.filter(kind="gift").count(),
        wallet_get(user=sender).balance if sender.pk else None,
    )
    assert after == before
    return info.value


def test_minor_cannot_gift(creator, rose):
    minor = fund(MinorFactory(), 100)
    assert _refused("age_restricted", minor).status == 403


def test_frozen_wallet(sender, creator, rose):
    wallet_freeze(user=sender, reason="chargeback")
    assert _refused("wallet_frozen", sender).status == 423


def test_insufficient_funds(sender, creator, lion):
    assert _refused("insufficient_funds", sender, gift_slug="lion", quantity=4).status == 402
    assert not DailyGiftSpend.objects.exists()


def test_no_wallet_is_insufficient(creator, rose):
    assert _refused("insufficient_funds", UserFactory()).status == 402


def test_daily_limit(settings, sender, creator, lion):
    settings.DAILY_GIFT_LIMIT = 700
    send(sender, gift_slug="lion", quantity=2)
    assert _refused("daily_limit_exceeded", sender, gift_slug="lion").status == 403
    assert DailyGiftSpend.objects.get(user=sender).coins == 600
    assert _refused("daily_limit_exceeded", sender, gift_slug="lion", quantity=3).status == 403


def test_self_gift(creator, rose):
    fund(creator.user, 100)
    assert _refused("self_gift", creator.user).status == 400


def test_unknown_creator(sender, rose):
    assert _refused("creator_not_found", sender, creator_handle="nobody").status == 404
    assert _refused("creator_not_found", sender, creator_handle="").status == 404


def test_inactive_or_minor_creator_cannot_receive(sender, rose):
    inactive = make_creator("gone")
    inactive.is_active = False
    inactive.save()
    assert _refused("creator_cannot_receive", sender, creator_handle="gone").status == 403
    make_creator("kid", date_of_birth=MinorFactory.date_of_birth.function())
    assert _refused("creator_cannot_receive", sender, creator_handle="kid").status == 403


def test_unknown_expired_future_and_inactive_gifts(sender, creator):
    now = timezone.now()
    GiftFactory(slug="old", available_until=now - timedelta(minutes=1))
    GiftFactory(slug="soon", available_from=now + timedelta(days=1))
    GiftFactory(slug="off", is_active=False)
    assert _refused("gift_not_found", sender, gift_slug="nope").status == 404
    for slug in ("old", "soon", "off"):
        assert _refused("gift_unavailable", sender, gift_slug=slug).status == 400


@pytest.mark.parametrize("quantity", [0, -1, 10_000, "3", None, True, 2.5])
def test_bad_quantity(sender, creator, rose, quantity):
    _refused("validation_error", sender, quantity=quantity)


def test_bad_context_and_message(sender, creator, rose):
    _refused("validation_error", sender, live_id="a", video_id="b")
    _refused("validation_error", sender, live_id="has space")
    _refused("validation_error", sender, message="x" * 151)
    _refused("message_blocked", sender, message="this is a SCAM")


def test_few_queries_per_gift(gift_path, sender, creator, rose):
    send(sender)  # the platform accounts exist from here on
    with CaptureQueriesContext(connection) as queries:
        send(sender)
    if gift_path == "sql":
        # One round trip: the function, nothing around it (the test's own transaction adds
        # no savepoint: gift_send opens none on this path).
        assert [q["sql"][:20] for q in queries] == ["SELECT gift_send_v4("], queries
        return
    # 4 reads (creator, gift, accounts, the sender's own spending limits) + 6 writes +
    # ledger_post's savepoint pair around the journal insert = 12; the test's own transaction
    # adds a savepoint pair around gift_send (BEGIN/COMMIT in real use).
    assert len(queries) <= 14, [q["sql"] for q in queries]
    sql = " ".join(q["sql"] for q in queries)
    assert "creators_creator" in sql
    assert 'UPDATE "creators_creator"' not in sql
    assert f'WHERE "wallets_account"."id" = {creator.pending_account_id}' not in sql
    assert "FOR UPDATE" not in sql


def test_pending_account_is_hot(creator):
    assert Account.objects.get(pk=creator.pending_account_id).is_hot
    assert Account.objects.get(pk=creator.pending_account_id).kind == AccountKind.DIAMONDS_PENDING
