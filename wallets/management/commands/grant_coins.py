from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from wallets.services import wallet_adjust, wallet_get


class Command(BaseCommand):
    help = "Credit (or, with a negative number, debit) a user's coins with a reason."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("coins", type=int)
        parser.add_argument("--reason", required=True)

    def handle(self, *args, username, coins, reason, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"grant_coins: no user named {username!r}")
        try:
            txn = wallet_adjust(user=user, coins=coins, reason=reason, actor=None)
        except DomainError as exc:
            raise CommandError(f"grant_coins: {exc.message}") from exc
        balance = wallet_get(user=user).balance
        self.stdout.write(
            f"grant_coins: {coins:+d} coins to {username} (transaction {txn.pk}); balance {balance}"
        )
