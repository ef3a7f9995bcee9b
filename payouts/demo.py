"""Demo payout method for the demo creator (idempotent). The weekly schedule itself is seeded
by migration ``0002_seed_beat_schedule`` so it exists in every environment."""

from django.utils import timezone

from creators.models import Creator
from payouts.models import PayoutMethod, Rail


def seed(out) -> None:
    creator = Creator.objects.filter(handle="demo").first()
    if creator is None:
        return
    PayoutMethod.objects.get_or_create(
        creator=creator,
        defaults={
            "rail": Rail.MANUAL,
            "account_holder": "Demo Creator",
            "iban": "GB82WEST12345698765432",
            "is_verified": True,
            "verified_at": timezone.now(),
        },
    )
    out.append("demo creator paid by bank transfer (manual rail, verified); run_payouts weekly")
