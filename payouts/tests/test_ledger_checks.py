"""verify_ledger's payout checks fail on broken data (their queries are rewritten for plans that
do not depend on the planner's statistics, issue #16)."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from payouts.models import Payout, PayoutStatementLine, PayoutStatus
from payouts.services import payout_batch_run
from payouts.tests.factories import make_payout_creator
from wallets.ledger_checks import run_checks
from wallets.models import Account, AccountKind

pytestmark = pytest.mark.django_db

NAME = "diamonds in payout = diamonds of open payouts"


def test_in_payout_balance_that_open_payouts_do_not_hold_is_named():
    creator = make_payout_creator(3000)
    payout_batch_run(set_based=True)
    (payout,) = Payout.objects.filter(creator=creator)
    assert dict(run_checks())[NAME] == []
    account = Account.objects.get(kind=AccountKind.DIAMONDS_IN_PAYOUT, user=creator.user)
    with connection.cursor() as cursor:  # bypasses the ledger on purpose
        cursor.execute(
            "UPDATE wallets_account SET balance = balance + 5 WHERE id = %s", [account.pk]
        )
    (problem,) = dict(run_checks())[NAME]
    assert problem == (
        f"user {creator.user_id}: {payout.diamonds + 5} diamonds in payout but open payouts "
        f"hold {payout.diamonds}"
    )


def test_open_payout_whose_diamonds_sit_in_someone_elses_account_is_named():
    creator = make_payout_creator(3000)
    payout_batch_run(set_based=True)
    (payout,) = Payout.objects.filter(creator=creator)
    stranger = UserFactory()
    with connection.cursor() as cursor:  # bypasses the ledger on purpose
        cursor.execute(
            "UPDATE wallets_account SET user_id = %s WHERE kind = %s AND user_id = %s",
            [stranger.pk, AccountKind.DIAMONDS_IN_PAYOUT, creator.user_id],
        )
    assert sorted(dict(run_checks())[NAME]) == sorted(
        [
            f"user {creator.user_id}: 0 diamonds in payout but open payouts hold {payout.diamonds}",
            f"user {stranger.pk}: {payout.diamonds} diamonds in payout but open payouts hold 0",
        ]
    )


def test_an_entry_paid_beyond_its_amount_is_named():
    creator = make_payout_creator(3000)
    payout_batch_run(set_based=True)
    line = PayoutStatementLine.objects.get(payout__creator=creator)
    name = "statement lines allocate each entry at most once"
    assert dict(run_checks())[name] == []
    PayoutStatementLine.objects.filter(pk=line.pk).update(diamonds=line.entry_diamonds + 1)
    assert dict(run_checks())[name] == [
        f"entry {line.entry_id} of {line.entry_diamonds} diamonds is allocated "
        f"{line.entry_diamonds + 1} by payouts"
    ]
    # The lines of a payout that no longer stands allocate nothing.
    Payout.objects.filter(pk=line.payout_id).update(status=PayoutStatus.FAILED)
    assert dict(run_checks())[name] == []
