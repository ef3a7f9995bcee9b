"""Every service a person acts through (it takes an ``actor``) writes its own audit row, inside
its own transaction: the admin, an API call, a command and a script leave the same trail, and
the row commits or rolls back with the change.

The first test finds those services in the source, so a new one cannot slip past: it is
either exercised below or listed in ``NOT_A_PERSONS_ACTION`` with the reason.
"""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction

from accounts.models import AuditLog
from accounts.roles import FINANCE
from accounts.tests.factories import UserFactory
from staff.tests.factories import staff_user

ROOT = Path(__file__).resolve().parent.parent
APPS_BELOW_STAFF = ["accounts", "wallets", "creators", "gifts", "payouts", "memberships"]

# Take an ``actor`` but are not a person's action of their own; each says who audits instead.
NOT_A_PERSONS_ACTION = {
    # The ledger primitive: the service that calls it (and knows why) audits.
    "wallets.services.ledger.ledger_post",
    # Applies a refund already made at Stripe: recharge_refund audits a staff refund, and a
    # refund made in Stripe's dashboard or a dispute has no actor here.
    "wallets.services.refunds.recharge_refund_apply",
    # Issues coins for a payment or a won dispute (no person); called inside those services.
    "wallets.services.recharges.coins_credit",
    # Asks Stripe whether a connected account may be paid; payout_method_verify (staff) and
    # payout_method_set (the creator, through _method_save) audit around it.
    "payouts.services.methods.payout_method_refresh",
}


def _services_taking_an_actor() -> set[str]:
    found = set()
    for app in APPS_BELOW_STAFF:
        paths = [ROOT / app / "services.py", *sorted((ROOT / app / "services").glob("*.py"))]
        for path in paths:
            if not path.exists():
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                    params = [a.arg for a in node.args.args + node.args.kwonlyargs]
                    if "actor" in params:
                        found.add(f"{module}.{node.name}")
    return found


pytestmark = pytest.mark.django_db


def _finance():
    return staff_user(FINANCE, device=False)


def _wallet_adjust(actor, settings):
    from wallets.services import wallet_adjust

    wallet_adjust(user=UserFactory(), coins=50, reason="goodwill", actor=actor)
    return "wallet_credit"


def _wallet_freeze(actor, settings):
    from wallets.services import wallet_freeze

    wallet_freeze(user=UserFactory(), reason="looks odd", actor=actor)
    return "wallet_freeze"


def _wallet_unfreeze(actor, settings):
    from wallets.services import wallet_freeze, wallet_unfreeze

    user = UserFactory()
    wallet_freeze(user=user, reason="looks odd", actor=None)
    wallet_unfreeze(user=user, actor=actor, reason="cleared up")
    return "wallet_unfreeze"


def _coin_debt_write_off(actor, settings):
    from wallets.models import AccountKind, TransactionKind
    from wallets.services import Posting, account_get, ledger_post, platform_account
    from wallets.services.recharges import coin_debt_write_off

    user = UserFactory()
    with transaction.atomic():
        ledger_post(
            kind=TransactionKind.ADJUSTMENT,
            idempotency_key=f"test-debt:{user.pk}",
            postings=[
                Posting(account_get(kind=AccountKind.COIN_DEBT, user=user), -70),
                Posting(platform_account(AccountKind.ADJUSTMENTS), 70),
            ],
        )
    assert coin_debt_write_off(user=user, reason="goodwill", actor=actor) == 70
    return "coin_debt_write_off"


def _discrepancy_resolve(actor, settings):
    from wallets.models import Discrepancy
    from wallets.services import discrepancy_resolve

    discrepancy = Discrepancy.objects.create(kind="test", object_type="recharge", object_id="1")
    discrepancy_resolve(discrepancy=discrepancy, actor=actor, note="fine")
    return "discrepancy_resolve"


def _recharge(coins=1000):
    from wallets.models import RechargeStatus
    from wallets.services import recharge_create

    recharge = recharge_create(
        user=UserFactory(), currency="USD", coins=coins, payment_method="pm_card_visa"
    )
    assert recharge.status == RechargeStatus.SUCCEEDED
    return recharge


def _recharge_refund(actor, settings):
    from wallets.services import recharge_refund

    recharge_refund(recharge=_recharge(), reason="asked", coins=100, actor=actor)
    return "recharge_refund"


def _recharge_refund_by_staff(actor, settings):
    from wallets.services import recharge_refund_by_staff

    recharge_refund_by_staff(actor=actor, recharge=_recharge(), reason="asked", coins=100)
    return "recharge_refund"


def _package_price(action):
    def run(actor, settings):
        from djmoney.money import Money

        from wallets.models import CoinPackage
        from wallets.services import (
            coin_package_price_approve,
            coin_package_price_propose,
            coin_package_price_reject,
        )

        package = CoinPackage.objects.create(coins=100)
        proposer = actor if action == "propose" else _finance()
        change = coin_package_price_propose(
            actor=proposer, package=package, price=Money("9.99", "EUR"), reason="new price"
        )
        if action == "approve":
            coin_package_price_approve(actor=actor, change=change)
        elif action == "reject":
            coin_package_price_reject(actor=actor, change=change, note="no")
        return f"coin_price_{action}"

    return run


def _awaiting_payout(settings):
    from payouts.models import Payout, PayoutStatus
    from payouts.services import payout_batch_run
    from payouts.tests.factories import make_payout_creator

    settings.PAYOUT_APPROVAL_ABOVE = Decimal("10")
    creator = make_payout_creator(4000)
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    assert payout.status == PayoutStatus.AWAITING_APPROVAL
    return payout


def _payout_action(name):
    def run(actor, settings):
        from payouts import services

        payout = _awaiting_payout(settings)
        if name in ("payout_mark_paid", "payout_mark_failed", "payout_retry"):
            services.payout_approve(payout=payout, actor=_finance())
            payout.refresh_from_db()
        kwargs = {"reason": "test"} if name in ("payout_cancel", "payout_mark_failed") else {}
        getattr(services, name)(payout=payout, actor=actor, **kwargs)
        return name

    return run


def _payout_method_verify(actor, settings):
    from payouts.services import payout_method_verify
    from payouts.tests.factories import make_payout_creator

    method = make_payout_creator(100, verified=False).payout_method
    payout_method_verify(method=method, actor=actor)
    return "payout_method_verify_request"


def _payout_method_record_tax_form(actor, settings):
    from payouts.models import TaxFormStatus
    from payouts.services import payout_method_record_tax_form
    from payouts.tests.factories import make_payout_creator

    method = make_payout_creator(100).payout_method
    payout_method_record_tax_form(method=method, status=TaxFormStatus.W9, actor=actor)
    return "payout_method_tax_form"


def _payout_batch_run(actor, settings):
    from payouts.services import payout_batch_run

    payout_batch_run(actor=actor)
    return "payout_batch_run"


def _earnings_release_by_staff(actor, settings):
    from creators.services import earnings_release_by_staff
    from gifts.tests.factories import make_creator

    earnings_release_by_staff(creator=make_creator("releaser"), actor=actor)
    return "earnings_release"


def _tier_update(actor, settings):
    from memberships.services import tier_create, tier_update

    tier = tier_create(creator=actor.creator, name="Fan", coins_per_month=100, perks="a shout-out")
    tier_update(tier=tier, actor=actor, coins_per_month=120)
    return "membership_tier_update"


def _creator_actor():
    from gifts.tests.factories import make_creator

    return make_creator("tiered").user


CASES = {
    "wallets.services.ledger.wallet_adjust": _wallet_adjust,
    "wallets.services.ledger.wallet_freeze": _wallet_freeze,
    "wallets.services.ledger.wallet_unfreeze": _wallet_unfreeze,
    "wallets.services.recharges.coin_debt_write_off": _coin_debt_write_off,
    "wallets.services.discrepancies.discrepancy_resolve": _discrepancy_resolve,
    "wallets.services.refunds.recharge_refund": _recharge_refund,
    "wallets.services.staff_refunds.recharge_refund_by_staff": _recharge_refund_by_staff,
    "wallets.services.packages.coin_package_price_propose": _package_price("propose"),
    "wallets.services.packages.coin_package_price_approve": _package_price("approve"),
    "wallets.services.packages.coin_package_price_reject": _package_price("reject"),
    "payouts.services.actions.payout_approve": _payout_action("payout_approve"),
    "payouts.services.actions.payout_cancel": _payout_action("payout_cancel"),
    "payouts.services.actions.payout_mark_paid": _payout_action("payout_mark_paid"),
    "payouts.services.actions.payout_mark_failed": _payout_action("payout_mark_failed"),
    "payouts.services.actions.payout_retry": _payout_action("payout_retry"),
    "payouts.services.methods.payout_method_verify": _payout_method_verify,
    "payouts.services.methods.payout_method_record_tax_form": _payout_method_record_tax_form,
    "payouts.services.batch.payout_batch_run": _payout_batch_run,
    "creators.services.earnings_release_by_staff": _earnings_release_by_staff,
    "memberships.services.tiers.tier_update": _tier_update,
}
# Services whose actor is the creator acting on their own things, not staff.
CREATOR_ACTS = {"memberships.services.tiers.tier_update"}


def test_every_service_taking_an_actor_is_audited_or_says_who_audits(db):
    found = _services_taking_an_actor()
    assert found - set(CASES) - NOT_A_PERSONS_ACTION == set()
    # Nothing listed here that no longer exists (a rename would hide a new service).
    assert (set(CASES) | NOT_A_PERSONS_ACTION) - found == set()


@pytest.mark.parametrize("service", sorted(CASES))
def test_the_service_writes_its_own_audit_row(service, settings):
    run = CASES[service]
    actor = _creator_actor() if service in CREATOR_ACTS else _finance()
    before = AuditLog.objects.count()
    action = run(actor, settings)
    rows = AuditLog.objects.filter(actor=actor, action=action)
    assert rows.count() == 1, (service, list(AuditLog.objects.values_list("action", "actor")))
    assert AuditLog.objects.count() > before


def test_the_audit_row_rolls_back_with_the_change(db):
    from wallets.models import Account, AccountKind
    from wallets.services import wallet_adjust

    actor, user = _finance(), UserFactory()

    def adjust_then_fail() -> None:
        with transaction.atomic():
            wallet_adjust(user=user, coins=50, reason="goodwill", actor=actor)
            raise RuntimeError("the caller's transaction fails after the service")

    with pytest.raises(RuntimeError):
        adjust_then_fail()
    assert not AuditLog.objects.filter(actor=actor).exists()
    wallet = Account.objects.filter(user=user, kind=AccountKind.WALLET).first()
    assert wallet is None or wallet.balance == 0
