"""Four-eyes that cannot be sliced or self-served (issue #14, item 5).

- The approval threshold applies to a rolling 24-hour total per acting staff member and per
  wallet, credits and debits alike, and two concurrent adjustments cannot both slip under.
- No staff member acts on their own wallet, creator profile or payouts: refused and audited.
- Payout-method verification and coin package prices need a second finance member.
Each goes through the admin and the management commands: the same services.
"""

import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from djmoney.money import Money

from accounts.audit import OwnAccountRefused
from accounts.tests.factories import UserFactory
from creators.services import creator_create
from payouts.models import Payout, PayoutMethod, PayoutStatus
from payouts.services import payout_batch_run
from payouts.tests.factories import VALID_IBAN, give_available_diamonds, make_payout_creator
from staff.models import AdjustmentRequest, AdjustmentStatus, AuditLog
from staff.permissions import FINANCE
from staff.services import adjustment_request_approve, staff_wallet_adjust
from staff.tests.factories import staff_user, verified_client
from wallets.models import CoinPackage, CoinPackagePrice, CoinPackagePriceChange
from wallets.services import wallet_adjust, wallet_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(settings):
    settings.ADJUSTMENT_APPROVAL_ABOVE = 1000
    return 1000


def funded(coins: int = 5000):
    user = UserFactory.create()
    wallet_adjust(user=user, coins=coins, reason="seed", actor=None)
    return user


def adjust(actor, user, coins: int, key: str):
    return staff_wallet_adjust(
        actor=actor, user=user, coins=coins, reason="test", idempotency_key=key
    )


def refusals(actor) -> list[str]:
    return [
        (row.after or {})["refused"]
        for row in AuditLog.objects.filter(actor=actor, action="own_account_refused")
    ]


# --- Rolling 24-hour totals ------------------------------------------------------------------


def test_credits_cannot_be_sliced_under_the_limit_per_staff_member_or_wallet(limit):
    maker, colleague = staff_user(FINANCE), staff_user(FINANCE)
    dana, erin = funded(), funded()

    first = adjust(maker, dana, 600, "a")
    sliced = adjust(maker, dana, 600, "b")  # the same wallet: 1,200 in 24 h
    elsewhere = adjust(maker, erin, 500, "c")  # another wallet, but maker's total is 1,100
    by_colleague = adjust(colleague, dana, 500, "d")  # dana's wallet already got 600

    assert first.status == AdjustmentStatus.POSTED
    assert [sliced.status, elsewhere.status, by_colleague.status] == [AdjustmentStatus.PENDING] * 3
    assert wallet_get(user=dana).balance == 5600
    assert wallet_get(user=erin).balance == 5000
    audit = AuditLog.objects.get(action="adjustment_request", object_id=str(sliced.pk))
    assert audit.after["posted_24h_by_actor"] == 600
    assert audit.after["limit"] == 1000


def test_debits_count_and_a_large_debit_needs_a_second_finance_member(limit):
    maker, checker = staff_user(FINANCE), staff_user(FINANCE)
    dana = funded()

    request = adjust(maker, dana, -1500, "big-debit")

    assert request.status == AdjustmentStatus.PENDING
    assert wallet_get(user=dana).balance == 5000
    adjustment_request_approve(actor=checker, adjustment=request)
    assert wallet_get(user=dana).balance == 3500
    # Small debits add up too: 600 out, then 600 in is 1,200 moved by the maker.
    assert adjust(maker, dana, -600, "d1").status == AdjustmentStatus.POSTED
    assert adjust(maker, dana, 600, "d2").status == AdjustmentStatus.PENDING


def test_grant_coins_command_uses_the_same_limit(limit, capsys):
    alice = staff_user(FINANCE, username="alice-fin")
    dana = funded()

    call_command("grant_coins", dana.username, "600", "--reason", "goodwill", "--by", "alice-fin")
    call_command("grant_coins", dana.username, "600", "--reason", "goodwill", "--by", "alice-fin")
    call_command("grant_coins", dana.username, "900", "--reason", "console")  # the console

    out = capsys.readouterr().out
    assert "waits for a finance user's approval" in out
    assert wallet_get(user=dana).balance == 5600
    rows = AdjustmentRequest.objects.filter(user=dana).order_by("id")
    assert [(r.requested_by, r.status) for r in rows] == [
        (alice, AdjustmentStatus.POSTED),
        (alice, AdjustmentStatus.PENDING),
        (None, AdjustmentStatus.PENDING),  # dana's wallet already got 600 today
    ]
    with pytest.raises(CommandError):
        call_command("grant_coins", alice.username, "5", "--reason", "me", "--by", "alice-fin")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_two_concurrent_adjustments_cannot_both_slip_under(limit):
    maker = staff_user(FINANCE)
    dana, erin = funded(), funded()
    barrier = threading.Barrier(2)
    results = {}

    def run(user, key):
        try:
            barrier.wait(timeout=10)
            results[key] = adjust(maker, user, 600, key).status
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(u, k)) for u, k in ((dana, "x"), (erin, "y"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results.values()) == [AdjustmentStatus.PENDING, AdjustmentStatus.POSTED]
    assert wallet_get(user=dana).balance + wallet_get(user=erin).balance == 10_600


# --- Never on one's own accounts -------------------------------------------------------------


def test_staff_cannot_adjust_freeze_or_approve_on_their_own_wallet(limit):
    maker, me = staff_user(FINANCE), staff_user(FINANCE)
    wallet_adjust(user=me, coins=100, reason="seed", actor=None)

    with pytest.raises(OwnAccountRefused):
        adjust(me, me, 50, "self")
    request = adjust(maker, me, 5000, "for-me")  # a colleague asks for a credit to me
    with pytest.raises(OwnAccountRefused):
        adjustment_request_approve(actor=me, adjustment=request)

    assert wallet_get(user=me).balance == 100
    assert refusals(me) == ["adjustment_approve", "wallet_credit"]  # newest first


def test_admin_refuses_and_audits_a_refund_of_ones_own_recharge():
    from wallets.models import Recharge, RechargeStatus

    me = staff_user(FINANCE)
    recharge = Recharge.objects.create(
        user=me,
        coins=700,
        price=Money("9.99", "EUR"),
        amount_refunded=Money("0.00", "EUR"),
        payment_intent="pi_own_refund_test",
        status=RechargeStatus.SUCCEEDED,
    )

    verified_client(me).post(
        "/admin/wallets/recharge/",
        {
            "action": "refund_action",
            "_selected_action": [recharge.pk],
            "apply": "1",
            "reason": "mine",
            "idempotency_key": "f" * 32,
        },
    )

    recharge.refresh_from_db()
    assert recharge.coins_refunded == 0
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert refusals(me) == ["recharge_refund"]


def test_admin_refuses_and_audits_an_adjustment_of_ones_own_wallet():
    me = staff_user(FINANCE)
    wallet = wallet_get(user=me)

    response = verified_client(me).post(
        f"/admin/staff/wallet/{wallet.pk}/adjust/",
        {"coins": 500, "reason": "bonus", "nonce": "9" * 32},
        follow=True,
    )

    assert "may not act on their own wallet" in response.content.decode()
    assert wallet_get(user=me).balance == 0
    assert refusals(me) == ["wallet_credit"]


def test_staff_cannot_act_on_their_own_payouts_method_or_tax_form(settings):
    me = staff_user(FINANCE)
    creator = creator_create(user=me, handle="me-creator", display_name="Me")
    give_available_diamonds(me, 300_000)  # USD 1,500: above the approval threshold
    PayoutMethod.objects.create(
        creator=creator, rail="manual", account_holder="Me", iban=VALID_IBAN, is_verified=False
    )
    client = verified_client(me)
    method = PayoutMethod.objects.get(creator=creator)

    client.post(
        "/admin/payouts/payoutmethod/",
        {"action": "verify_action", "_selected_action": [method.pk]},
    )
    client.post(
        "/admin/payouts/payoutmethod/",
        {"action": "tax_w9_action", "_selected_action": [method.pk]},
    )
    with pytest.raises(CommandError):
        call_command("verify_payout_method", "me-creator", "--by", me.username)
    PayoutMethod.objects.filter(pk=method.pk).update(is_verified=True)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    client.post(
        "/admin/payouts/payout/", {"action": "approve_action", "_selected_action": [payout.pk]}
    )
    client.post(
        f"/admin/creators/creator/{creator.pk}/change/",
        {"display_name": "Me!", "bio": "", "is_active": "on"},
    )

    method.refresh_from_db()
    payout.refresh_from_db()
    creator.refresh_from_db()
    assert method.tax_form_status == "missing"
    assert method.verification_requested_by is None
    assert payout.status == PayoutStatus.AWAITING_APPROVAL
    assert creator.display_name == "Me"
    assert sorted(refusals(me)) == [
        "creator_change",
        "payout_approve",
        "payout_method_tax_form",
        "payout_method_verify",
        "payout_method_verify",
    ]


# --- A second finance member -----------------------------------------------------------------


def test_verifying_bank_details_needs_two_finance_members(capsys):
    alice = staff_user(FINANCE, username="alice-v")
    bob = staff_user(FINANCE, username="bob-v")
    creator = make_payout_creator(verified=False)

    call_command("verify_payout_method", creator.handle, "--by", "alice-v")
    assert not PayoutMethod.objects.get(creator=creator).is_verified
    with pytest.raises(CommandError, match="different finance member"):
        call_command("verify_payout_method", creator.handle, "--by", "alice-v")
    with pytest.raises(CommandError):
        call_command("verify_payout_method", creator.handle)  # nobody named
    assert AuditLog.objects.filter(actor=alice, action="four_eyes_refused").exists()

    # Through the admin: bob approves alice's proposal.
    verified_client(bob).post(
        "/admin/payouts/payoutmethod/",
        {"action": "verify_action", "_selected_action": [creator.payout_method.pk]},
    )

    method = PayoutMethod.objects.get(creator=creator)
    assert method.is_verified
    assert method.verified_by == bob
    assert method.verification_requested_by == alice
    assert "proposed by alice-v" in capsys.readouterr().out


def test_a_destination_change_clears_a_pending_verification():
    from accounts.tests.factories import PASSWORD
    from payouts.services import payout_method_set, payout_method_verify

    alice, bob = staff_user(FINANCE), staff_user(FINANCE)
    creator = make_payout_creator(verified=False)
    payout_method_verify(method=creator.payout_method, actor=alice)
    payout_method_set(
        user=creator.user,
        password=PASSWORD,
        rail="manual",
        account_holder="Mallory",
        iban="GB82WEST12345698765432",
    )

    method = payout_method_verify(method=PayoutMethod.objects.get(creator=creator), actor=bob)

    assert not method.is_verified
    assert method.verification_requested_by == bob


def test_coin_package_prices_change_only_with_a_second_finance_member():
    alice, bob = staff_user(FINANCE), staff_user(FINANCE)
    package = CoinPackage.objects.create(coins=100)
    CoinPackagePrice.objects.create(package=package, price=Money("0.99", "EUR"))

    verified_client(alice).post(
        "/admin/wallets/coinpackagepricechange/add/",
        {
            "package": package.pk,
            "price_0": "0.01",
            "price_1": "EUR",
            "reason": "promo",
        },
    )
    change = CoinPackagePriceChange.objects.get()
    assert change.previous_amount == Decimal("0.99")
    assert CoinPackagePrice.objects.get(package=package).price == Money("0.99", "EUR")
    # The proposer cannot approve; the inline on the package cannot edit prices either.
    verified_client(alice).post(
        "/admin/wallets/coinpackagepricechange/",
        {"action": "approve_action", "_selected_action": [change.pk]},
    )
    assert CoinPackagePrice.objects.get(package=package).price == Money("0.99", "EUR")
    assert AuditLog.objects.filter(actor=alice, action="four_eyes_refused").exists()

    verified_client(bob).post(
        "/admin/wallets/coinpackagepricechange/",
        {"action": "approve_action", "_selected_action": [change.pk]},
    )

    change.refresh_from_db()
    assert change.status == "approved"
    assert change.decided_by == bob
    assert CoinPackagePrice.objects.get(package=package).price == Money("0.01", "EUR")
