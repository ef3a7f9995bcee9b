"""Demo gift catalog, the demo creator and a few gifts. Idempotent."""

from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from creators.models import Creator
from creators.services import creator_create
from gifts.models import Gift, GiftCategory
from gifts.services import gift_send
from wallets.services import wallet_adjust

C = GiftCategory
CATALOG = [
    ("rose", "Rose", 1, C.CLASSIC),
    ("heart", "Heart", 5, C.LOVE),
    ("thumbs-up", "Thumbs up", 10, C.CLASSIC),
    ("ice-cream", "Ice cream", 10, C.FUN),
    ("finger-heart", "Finger heart", 15, C.LOVE),
    ("perfume", "Perfume", 20, C.LUXURY),
    ("doughnut", "Doughnut", 30, C.FUN),
    ("hand-hearts", "Hand hearts", 100, C.LOVE),
    ("confetti", "Confetti", 100, C.FUN),
    ("sunglasses", "Sunglasses", 199, C.FUN),
    ("corgi", "Corgi", 299, C.FUN),
    ("money-gun", "Money gun", 500, C.LUXURY),
    ("disco-ball", "Disco ball", 1000, C.FUN),
    ("fireworks", "Fireworks", 1088, C.SEASONAL),  # limited time
    ("race-car", "Race car", 2000, C.LUXURY),
    ("yacht", "Yacht", 7000, C.LUXURY),
    ("rocket", "Rocket", 10000, C.LUXURY),
    ("castle", "Castle", 20000, C.LUXURY),
    ("lion", "Lion", 29999, C.LUXURY),
    ("universe", "Universe", 34999, C.LUXURY),
]

# (sender, gift, quantity, message): the demo viewer and two fans, so the page is not empty.
DEMO_GIFTS = [
    ("viewer", "rose", 5, "Hello from the demo!"),
    ("viewer", "finger-heart", 1, ""),
    ("viewer", "doughnut", 2, "Love this stream"),
    ("mia_fan", "hand-hearts", 1, "First!"),
    ("mia_fan", "corgi", 1, ""),
    ("leo_live", "confetti", 2, "gg"),
]


def seed(out: list[str]) -> None:
    now = timezone.now()
    for order, (slug, name, coins, category) in enumerate(CATALOG):
        Gift.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "coins": coins,
                "category": category,
                "sort_order": order,
                "available_until": now + timedelta(days=30) if category == C.SEASONAL else None,
            },
        )
    User = get_user_model()
    creator_user = User.objects.get(username="creator")
    if not Creator.objects.filter(user=creator_user).exists():
        creator_create(
            user=creator_user,
            handle="demo",
            display_name="Demo Creator",
            bio="Live every evening: music, chat and terrible jokes.",
        )
    for username in ("mia_fan", "leo_live"):
        fan, created = User.objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@example.com", "date_of_birth": date(1998, 3, 3)},
        )
        if created:
            fan.set_unusable_password()
            fan.save(update_fields=["password"])
        wallet_adjust(
            user=fan,
            coins=2000,
            reason="Demo coins",
            actor=None,
            idempotency_key=f"demo:{username}-coins",
        )
    for index, (username, slug, quantity, message) in enumerate(DEMO_GIFTS):
        gift_send(
            sender=User.objects.get(username=username),
            creator_handle="demo",
            gift_slug=slug,
            quantity=quantity,
            message=message,
            live_id="demo-live",
            client_key=f"demo-{index}",
        )
    out.append(
        f"{len(CATALOG)} gifts; creator page /creators/demo/ (login 'creator' for /creator/)"
    )
