import pytest
from django.core.management import call_command

from creators.models import Creator
from gifts.models import GiftEvent
from payouts.models import Payout, PayoutStatus
from wallets.models import LedgerTransaction


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_leaves_a_balanced_ledger(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    counts = (LedgerTransaction.objects.count(), GiftEvent.objects.count(), Payout.objects.count())
    call_command("seed_demo")
    assert (
        LedgerTransaction.objects.count(),
        GiftEvent.objects.count(),
        Payout.objects.count(),
    ) == counts
    creator = Creator.objects.get(handle="demo")
    payout = Payout.objects.get(creator=creator)
    assert payout.status == PayoutStatus.PAID
    assert payout.statement_lines.exists()
    assert "staff" in (tmp_path / "demo_logins.txt").read_text()
    call_command("verify_ledger")
