"""Issue 21 item 10: `grant_coins` never debits by a sign; a debit is explicit."""

import pytest
from django.core.management import CommandError, call_command

from gifts.tests.factories import fund
from wallets.models import LedgerTransaction as Transaction
from wallets.services import wallet_get


@pytest.mark.django_db
def test_grant_coins_credits(user, capsys):
    call_command("grant_coins", user.username, "250", reason="welcome")
    assert wallet_get(user=user).balance == 250
    assert f"+250 coins to {user.username}" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["-5", "0", "1.5", "ten"])
def test_grant_coins_refuses_anything_but_a_positive_whole_number(user, amount):
    fund(user, 100)
    before = Transaction.objects.count()
    with pytest.raises(CommandError, match="positive whole number"):
        call_command("grant_coins", user.username, amount, reason="oops")
    assert wallet_get(user=user).balance == 100
    assert Transaction.objects.count() == before


@pytest.mark.django_db
def test_grant_coins_debit_is_explicit_and_never_below_zero(user, capsys):
    fund(user, 100)
    call_command("grant_coins", user.username, "30", "--debit", reason="correction")
    assert wallet_get(user=user).balance == 70
    assert f"-30 coins to {user.username}" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("grant_coins", user.username, "71", "--debit", reason="too much")
    assert wallet_get(user=user).balance == 70
