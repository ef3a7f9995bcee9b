from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import DomainError
from payouts.models import PayoutMethod, Rail
from payouts.services import payout_method_verify


class Command(BaseCommand):
    help = (
        "Verify a creator's payout method. Bank details (manual): two finance members, each "
        "named with --by: the first run proposes, a run by a different member verifies. "
        "Stripe: ask Stripe whether the Connect account can receive payouts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("handle")
        parser.add_argument(
            "--by", default=None, help="the finance staff member acting (needed for bank details)"
        )

    def handle(self, *args: Any, handle: str, by: str | None, **options: Any) -> None:
        method = (
            PayoutMethod.objects.select_related("creator__user")
            .filter(creator__handle__iexact=handle.lstrip("@"))
            .first()
        )
        if method is None:
            raise CommandError(f"@{handle} has no payout method.")
        actor = None
        if by:
            actor = get_user_model().objects.filter(username=by).first()
            if actor is None:
                raise CommandError(f"verify_payout_method: no staff member named {by!r}")
        try:
            method = payout_method_verify(method=method, actor=actor)
        except (DomainError, PermissionDenied) as exc:
            raise CommandError(f"verify_payout_method: {getattr(exc, 'message', exc)}") from exc
        if method.is_verified:
            state = "verified"
        elif method.rail == Rail.MANUAL and method.verification_requested_by_id:
            state = f"proposed by {by}: a different finance member must verify it too"
        else:
            state = "NOT verified (Stripe onboarding incomplete)"
        self.stdout.write(f"verify_payout_method: @{method.creator.handle} {method.rail} {state}")
        if not method.is_verified and method.rail == Rail.STRIPE:
            raise CommandError("not verified")
