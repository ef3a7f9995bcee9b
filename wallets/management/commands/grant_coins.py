from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from wallets.services import wallet_adjust, wallet_get


class Command(BaseCommand):
    help = (
        "Credit a user's coins with a reason; with --debit, take them away instead. "
        "COINS is always a positive whole number: a debit is never implied by a sign."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        # A string, so a negative number reaches our own refusal instead of argparse's.
        parser.add_argument("coins")
        parser.add_argument("--reason", required=True)
        parser.add_argument(
            "--debit", action="store_true", help="take COINS away instead of crediting them"
        )

    def handle(self, *args, username, coins, reason, debit, **options):
        if not coins.isdigit() or int(coins) <= 0:
            raise CommandError(
                f"grant_coins: COINS must be a positive whole number (got {coins!r}); "
                "to take coins away, pass a positive number with --debit"
            )
        amount = int(coins)
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"grant_coins: no user named {username!r}")
        signed = -amount if debit else amount
        try:
            txn = wallet_adjust(user=user, coins=signed, reason=reason, actor=None)
        except DomainError as exc:
            raise CommandError(f"grant_coins: {exc.message}") from exc
        balance = wallet_get(user=user).balance
        self.stdout.write(
            f"grant_coins: {signed:+d} coins to {username} (transaction {txn.pk}); "
            f"balance {balance}"
        )
