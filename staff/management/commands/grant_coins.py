import uuid

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from staff.models import AdjustmentStatus
from staff.services import staff_wallet_adjust
from wallets.services import wallet_get


class Command(BaseCommand):
    help = (
        "Credit a user's coins with a reason; with --debit, take them away instead. COINS is "
        "always a positive whole number: a debit is never implied by a sign. The same service "
        "as the admin's credit / debit: beyond ADJUSTMENT_APPROVAL_ABOVE coins in 24 hours it "
        "becomes an adjustment request a (different) finance user approves."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        # A string, so a negative number reaches our own refusal instead of argparse's.
        parser.add_argument("coins")
        parser.add_argument("--reason", required=True)
        parser.add_argument(
            "--debit", action="store_true", help="take COINS away instead of crediting them"
        )
        parser.add_argument(
            "--by",
            default=None,
            help="the finance staff member acting (their 24-hour total and audit trail); "
            "without it, the operator console counts as one actor",
        )
        parser.add_argument(
            "--key", default=None, help="idempotency key: a rerun with the same key does nothing"
        )

    def handle(self, *args, username, coins, reason, debit, by, key, **options):
        if not coins.isdigit() or int(coins) <= 0:
            raise CommandError(
                f"grant_coins: COINS must be a positive whole number (got {coins!r}); "
                "to take coins away, pass a positive number with --debit"
            )
        coins = -int(coins) if debit else int(coins)
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            raise CommandError(f"grant_coins: no user named {username!r}")
        actor = None
        if by:
            actor = users.filter(username=by).first()
            if actor is None:
                raise CommandError(f"grant_coins: no staff member named {by!r}")
        try:
            adjustment = staff_wallet_adjust(
                actor=actor,
                user=user,
                coins=coins,
                reason=reason,
                idempotency_key=key or f"console:{uuid.uuid4()}",
            )
        except (DomainError, PermissionDenied) as exc:
            raise CommandError(f"grant_coins: {getattr(exc, 'message', exc)}") from exc
        if adjustment.status != AdjustmentStatus.POSTED:
            self.stdout.write(
                f"grant_coins: {coins:+d} coins to {username} is over the 24-hour limit: "
                f"adjustment request #{adjustment.pk} waits for a finance user's approval"
            )
            return
        balance = wallet_get(user=user).balance
        self.stdout.write(
            f"grant_coins: {coins:+d} coins to {username} (transaction "
            f"{adjustment.transaction_id}); balance {balance}"
        )
