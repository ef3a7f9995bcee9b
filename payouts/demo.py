"""Demo payout method and one paid payout with its statement, for the demo creator.

Idempotent. The weekly schedule itself is seeded by migration ``0002_seed_beat_schedule`` so
it exists in every environment.
"""

from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from creators.models import Creator
from creators.services import earnings_release
from gifts.services import gift_send
from payouts.models import Payout, PayoutMethod, PayoutStatus, Rail
from payouts.services import payout_batch_run, payout_mark_paid, payout_send
from wallets.services import wallet_adjust


def seed(out: list[str]) -> None:
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
    if Payout.objects.filter(creator=creator).exists():
        return
    _seed_paid_payout(creator)
    out.append("one paid demo payout with its statement on /creator/")


def _seed_paid_payout(creator: Creator) -> None:
    """A patron's big gift, released as if the hold had passed, paid in a bank run."""
    User = get_user_model()
    patron, created = User.objects.get_or_create(
        username="patron_pat",
        defaults={"email": "patron_pat@example.com", "date_of_birth": date(1980, 6, 1)},
    )
    if created:
        patron.set_unusable_password()
        patron.save(update_fields=["password"])
    wallet_adjust(
        user=patron,
        coins=20_000,
        reason="Demo patron coins",
        actor=None,
        idempotency_key="demo:patron-coins",
    )
    gift_send(
        sender=patron,
        creator_handle=creator.handle,
        gift_slug="castle",
        quantity=1,
        live_id="demo-live-1",
        message="For the birthday stream!",
        client_key="demo-castle",
    )
    # Release everything gifted so far, as the hold period would have a week from now.
    earnings_release(
        creator=creator, now=timezone.now() + timedelta(days=settings.EARNINGS_HOLD_DAYS)
    )
    staff = User.objects.filter(is_staff=True).order_by("pk").first()
    for payout_id in payout_batch_run(actor=staff).created:
        payout = payout_send(payout_id=payout_id)
        if payout.status == PayoutStatus.PROCESSING:
            payout_mark_paid(payout=payout, actor=staff, reference="DEMO-BANK-RUN-1")
