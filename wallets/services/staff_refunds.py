"""A refund made by staff: support has a limit, and spent coins need finance.

The recharge admin and the staff console both refund through here, so the role rules are
checked once, below the console (``accounts.roles``), whichever screen asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from accounts.audit import refuse_own_account
from accounts.client_address import ClientRequest
from accounts.roles import FINANCE, SUPPORT, has_role, require_role
from config.errors import InvalidInput
from wallets.models import Recharge, RechargeRefund
from wallets.services.refunds import recharge_refund

if TYPE_CHECKING:
    from accounts.models import User


def recharge_refund_by_staff(
    *,
    actor: User,
    recharge: Recharge,
    reason: str,
    coins: int | None = None,
    idempotency_key: str | None = None,
    request: ClientRequest | None = None,
) -> RechargeRefund:
    """See ``_refund``. Staff never refund their own purchases: refused and audited here,
    before the refund's transaction, so the refusal's audit row stays."""
    require_role(actor, (SUPPORT, FINANCE))
    refuse_own_account(
        actor=actor, owner=recharge.user, action="recharge_refund", obj=recharge, request=request
    )
    return _refund(
        actor=actor,
        recharge=recharge,
        reason=reason,
        coins=coins,
        idempotency_key=idempotency_key,
        request=request,
    )


@transaction.atomic
def _refund(
    *,
    actor: User,
    recharge: Recharge,
    reason: str,
    coins: int | None,
    idempotency_key: str | None,
    request: ClientRequest | None,
) -> RechargeRefund:
    """A staff refund through Stripe, with clawback, audited by ``recharge_refund``.

    Finance may refund anything. Support may refund up to ``SUPPORT_REFUND_LIMIT_COINS``
    coins, counted cumulatively per recharge and per member over a rolling 24 h, and only
    coins the viewer still holds: a refund that would put the viewer into coin debt (and claw
    back the creators they gifted) needs finance. Both limits are checked under the locks of
    ``recharge_refund`` (race-safe)."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    is_finance = has_role(actor, FINANCE)
    if idempotency_key:
        done = RechargeRefund.objects.filter(request_key=idempotency_key).first()
        if done is not None:
            return done  # a double submit: refunded and audited once
    return recharge_refund(
        recharge=recharge,
        reason=reason,
        coins=coins,
        actor=actor,
        idempotency_key=idempotency_key,
        support_limit=None if is_finance else int(settings.SUPPORT_REFUND_LIMIT_COINS),
        allow_debt=is_finance,
        request=request,
    )
