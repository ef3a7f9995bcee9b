"""Creators with diamonds and payout methods, for payout tests."""

import itertools
import uuid

from django.db import transaction

from accounts.tests.factories import UserFactory
from creators.services import creator_create
from payouts.models import PayoutMethod, Rail
from wallets.models import AccountKind, TransactionKind
from wallets.services import Posting, account_get, ledger_post, platform_account

_handles = itertools.count(1)
VALID_IBAN = "DE89370400440532013000"


def give_available_diamonds(user, diamonds: int) -> None:
    """Put diamonds straight into ``available`` (as if released) through the ledger."""
    with transaction.atomic():
        ledger_post(
            kind=TransactionKind.ADJUSTMENT,
            idempotency_key=f"test-diamonds:{uuid.uuid4()}",
            postings=[
                Posting(account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=user), diamonds),
                Posting(platform_account(AccountKind.DIAMOND_ADJUSTMENTS), -diamonds),
            ],
            memo="test diamonds",
        )


def make_payout_creator(
    diamonds: int = 0,
    *,
    rail: str = Rail.MANUAL,
    verified: bool = True,
    stripe_account_id: str = "",
    with_method: bool = True,
    **method_fields,
):
    user = UserFactory.create()
    creator = creator_create(
        user=user, handle=f"payee{next(_handles)}-{uuid.uuid4().hex[:6]}", display_name="Payee"
    )
    if diamonds:
        give_available_diamonds(user, diamonds)
    if with_method:
        PayoutMethod.objects.create(
            creator=creator,
            rail=rail,
            account_holder="Ada Lovelace" if rail == Rail.MANUAL else "",
            iban=VALID_IBAN if rail == Rail.MANUAL else "",
            stripe_account_id=stripe_account_id,
            is_verified=verified,
            **method_fields,
        )
    return creator


def available(creator) -> int:
    return account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=creator.user).balance


def in_payout(creator) -> int:
    return account_get(kind=AccountKind.DIAMONDS_IN_PAYOUT, user=creator.user).balance
