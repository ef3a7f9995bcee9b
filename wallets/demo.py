from django.contrib.auth import get_user_model

from wallets.services import wallet_adjust


def seed(out) -> None:
    viewer = get_user_model().objects.get(username="viewer")
    wallet_adjust(
        user=viewer,
        coins=5000,
        reason="Demo welcome coins",
        actor=None,
        idempotency_key="demo:viewer-welcome-coins",
    )
    out.append("viewer starts with 5,000 demo coins")
