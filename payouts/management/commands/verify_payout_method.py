from django.core.management.base import BaseCommand, CommandError

from payouts.models import PayoutMethod
from payouts.services import payout_method_verify


class Command(BaseCommand):
    help = (
        "Mark a creator's manual payout method verified (an operator checked it), or ask "
        "Stripe whether a Connect account can receive payouts."
    )

    def add_arguments(self, parser):
        parser.add_argument("handle")

    def handle(self, *args, handle, **options):
        method = (
            PayoutMethod.objects.select_related("creator")
            .filter(creator__handle__iexact=handle.lstrip("@"))
            .first()
        )
        if method is None:
            raise CommandError(f"@{handle} has no payout method.")
        method = payout_method_verify(method=method, actor=None)
        state = "verified" if method.is_verified else "NOT verified (Stripe onboarding incomplete)"
        self.stdout.write(f"verify_payout_method: @{method.creator.handle} {method.rail} {state}")
        if not method.is_verified:
            raise CommandError("not verified")
