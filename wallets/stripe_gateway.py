"""The one module that talks to Stripe (or localstripe in ``make run`` and tests).

Everything goes through a ``stripe.StripeClient`` built from settings, with timeouts, network
retries and idempotency keys made from our own committed row ids (a recharge's id, a user's
id for their customer). Amounts cross the boundary in the currency's minor units.

localstripe quirks handled here (see ENVIRONMENT.md): ``latest_charge`` comes back expanded
(real Stripe gives an id), list endpoints refuse the ``created`` filter (we page through and
filter ourselves), and ``Charge.list(payment_intent=...)`` errors (we never call it).

Stripe's answers leave this module as frozen dataclasses (``PaymentIntent``, ``Refund``,
``Charge``, ``PaymentError``, ``Dispute``) holding only the fields our code reads, each built
by its ``from_stripe`` (which takes a stripe-python object or a plain dict). A dispute webhook
body is parsed into ``Dispute``; the other webhook bodies stay dicts read through ``get``:
their handlers read ids from them and ask Stripe for the rest.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Self

import stripe
from django.conf import settings
from djmoney.money import Money

if TYPE_CHECKING:
    from stripe.params import CustomerCreateParams, PaymentIntentCreateParams

log = logging.getLogger(__name__)

# Stripe's zero-decimal and three-decimal currencies; every other one has two decimals.
ZERO_DECIMAL = {
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
}  # fmt: skip
THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}

StripeError = stripe.StripeError
CardError = stripe.CardError
InvalidRequestError = stripe.InvalidRequestError


def as_money(value: Any) -> Money:
    """A MoneyField's value, typed (the stubs see MoneyField as a DecimalField)."""
    if not isinstance(value, Money):
        raise TypeError(f"expected Money, got {value!r}")
    return value


def currency_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_minor(money: Money) -> int:
    """Money → Stripe's integer amount in minor units (USD 4.99 → 499, JPY 500 → 500)."""
    exponent = currency_exponent(str(money.currency))
    scaled = (money.amount * (Decimal(10) ** exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


def from_minor(amount: int, currency: str) -> Money:
    exponent = currency_exponent(currency)
    value = Decimal(int(amount)).scaleb(-exponent)
    return Money(value, currency.upper())


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_base: str, timeout: float, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base, "files": api_base, "connect": api_base},
        max_network_retries=retries,
        http_client=stripe.new_default_http_client(timeout=timeout),
    )


def client() -> stripe.StripeClient:
    return _client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE.rstrip("/"),
        float(settings.STRIPE_TIMEOUT),
        int(getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", 2)),
    )


def _options(idempotency_key: str | None) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


# --- Typed answers --------------------------------------------------------------------------


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _id_of(value: Any) -> str | None:
    """An id field that may come back expanded (localstripe expands ``latest_charge``)."""
    if value is None or isinstance(value, str):
        return value
    return _str_or_none(_get(value, "id"))


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


@dataclass(frozen=True)
class PaymentError:
    """A PaymentIntent's ``last_payment_error`` (or a ``CardError``'s body)."""

    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    card_fingerprint: str = ""

    @classmethod
    def from_stripe(cls, obj: Any) -> Self:
        method = _get(obj, "payment_method")
        card = _get(method, "card") if method is not None and not isinstance(method, str) else None
        return cls(
            type=_str_or_none(_get(obj, "type")),
            code=_str_or_none(_get(obj, "code")),
            decline_code=_str_or_none(_get(obj, "decline_code")),
            message=_str_or_none(_get(obj, "message")),
            card_fingerprint=str(_get(card, "fingerprint") or "") if card else "",
        )


@dataclass(frozen=True)
class PaymentIntent:
    """``amount`` in minor units and ``currency`` lower case, as Stripe gives them (None when
    missing: a mismatch for the caller); ``latest_charge`` is the charge's id."""

    id: str
    status: str | None = None
    amount: int | None = None
    currency: str | None = None
    customer: str | None = None
    client_secret: str | None = None
    latest_charge: str | None = None
    last_payment_error: PaymentError | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    created: int = 0

    @classmethod
    def from_stripe(cls, obj: Any) -> Self:
        error = _get(obj, "last_payment_error")
        return cls(
            id=str(_get(obj, "id") or ""),
            status=_str_or_none(_get(obj, "status")),
            amount=_int_or_none(_get(obj, "amount")),
            currency=_str_or_none(_get(obj, "currency")),
            customer=_id_of(_get(obj, "customer")),
            client_secret=_str_or_none(_get(obj, "client_secret")),
            latest_charge=_id_of(_get(obj, "latest_charge")),
            last_payment_error=PaymentError.from_stripe(error) if error else None,
            metadata=_metadata(_get(obj, "metadata")),
            created=_int_or_none(_get(obj, "created")) or 0,
        )


@dataclass(frozen=True)
class Refund:
    """``amount`` in minor units of ``currency`` (lower case, as Stripe gives it)."""

    id: str
    status: str | None
    amount: int
    currency: str
    payment_intent: str | None = None
    charge: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    created: int = 0

    @property
    def money(self) -> Money:
        return from_minor(self.amount, self.currency)

    @classmethod
    def from_stripe(cls, obj: Any) -> Self:
        return cls(
            id=str(_get(obj, "id") or ""),
            status=_str_or_none(_get(obj, "status")),
            amount=_int_or_none(_get(obj, "amount")) or 0,
            currency=str(_get(obj, "currency") or ""),
            payment_intent=_id_of(_get(obj, "payment_intent")),
            charge=_id_of(_get(obj, "charge")),
            metadata=_metadata(_get(obj, "metadata")),
            created=_int_or_none(_get(obj, "created")) or 0,
        )


@dataclass(frozen=True)
class Charge:
    id: str
    payment_intent: str | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> Self:
        return cls(
            id=str(_get(obj, "id") or ""),
            payment_intent=_id_of(_get(obj, "payment_intent")),
        )


@dataclass(frozen=True)
class Dispute:
    """A ``charge.dispute.*`` webhook body's dispute (``amount`` 0 when missing)."""

    id: str
    amount: int = 0
    currency: str | None = None
    status: str | None = None
    payment_intent: str | None = None
    charge: str | None = None

    @classmethod
    def from_stripe(cls, obj: Any) -> Self:
        return cls(
            id=str(_get(obj, "id") or ""),
            amount=_int_or_none(_get(obj, "amount")) or 0,
            currency=_str_or_none(_get(obj, "currency")),
            status=_str_or_none(_get(obj, "status")),
            payment_intent=_id_of(_get(obj, "payment_intent")),
            charge=_id_of(_get(obj, "charge")),
        )


# --- Objects --------------------------------------------------------------------------------


def customer_create(
    *, user_id: int, email: str, username: str, replacing: str | None = None
) -> str:
    # A replacement for a customer Stripe lost needs its own idempotency key: the first key
    # would hand back the lost customer for 24 hours.
    key = f"applause-customer-{user_id}" + (f"-replacing-{replacing}" if replacing else "")
    params: CustomerCreateParams = {"metadata": {"user_id": str(user_id), "username": username}}
    if email:
        params["email"] = email
    customer = client().v1.customers.create(
        params=params,
        options=_options(key),
    )
    return customer.id


def is_unavailable(exc: BaseException) -> bool:
    """Stripe could not be reached or could not answer (a connection error or timeout after
    the client's own retries, or a 5xx): the request may or may not have been carried out."""
    if isinstance(exc, stripe.APIConnectionError):
        return True
    status = getattr(exc, "http_status", None)
    return isinstance(exc, stripe.StripeError) and isinstance(status, int) and status >= 500


def customer_is_missing(customer_id: str) -> bool:
    """True when Stripe no longer knows this customer (deleted in the dashboard, or a local
    test server started afresh); False when it exists. Other errors propagate."""
    try:
        customer = client().v1.customers.retrieve(customer_id)
    except InvalidRequestError as exc:
        if exc.http_status == 404 or exc.code == "resource_missing":
            return True
        raise
    return bool(getattr(customer, "deleted", False))


def payment_intent_create(
    *,
    amount: Money,
    customer_id: str,
    user_id: int,
    recharge_id: int,
    payment_method: str | None = None,
    replaced_customer: bool = False,
) -> PaymentIntent:
    """The recharge's PaymentIntent, created (never confirmed) under an idempotency key made
    from the recharge's id: the row is committed before this call, so every retry sends the
    same request under the same key.

    ``replaced_customer``: the first attempt named a customer Stripe had lost; this one names
    its replacement, so it needs its own key (same key, other parameters is an error)."""
    params: PaymentIntentCreateParams = {
        "amount": to_minor(amount),
        "currency": str(amount.currency).lower(),
        "customer": customer_id,
        # No automatic_payment_methods: localstripe rejects it; cards are what we offer.
        "payment_method_types": ["card"],  # type: ignore[typeddict-unknown-key]  # not in stripe-python 16's types; the API and localstripe take it
        "metadata": {"user_id": str(user_id), "app": "applause", "recharge_id": str(recharge_id)},
    }
    if payment_method:
        params["payment_method"] = payment_method
    step = f"pi-{customer_id}" if replaced_customer else "pi"
    intent = client().v1.payment_intents.create(
        params=params,
        options=_options(f"applause-recharge-{recharge_id}-{step}"),
    )
    return PaymentIntent.from_stripe(intent)


def payment_intent_confirm(*, payment_intent_id: str, recharge_id: int) -> PaymentIntent:
    intent = client().v1.payment_intents.confirm(
        payment_intent_id,
        options=_options(f"applause-recharge-{recharge_id}-confirm"),
    )
    return PaymentIntent.from_stripe(intent)


def payment_intent_cancel(*, payment_intent_id: str, recharge_id: int) -> PaymentIntent:
    intent = client().v1.payment_intents.cancel(
        payment_intent_id,
        options=_options(f"applause-recharge-{recharge_id}-cancel"),
    )
    return PaymentIntent.from_stripe(intent)


def payment_intent_retrieve(payment_intent_id: str) -> PaymentIntent:
    return PaymentIntent.from_stripe(client().v1.payment_intents.retrieve(payment_intent_id))


def payment_method_fingerprint(payment_method_id: str) -> str:
    """The card's fingerprint (the same for every PaymentMethod made from one card number;
    localstripe gives one too), or "" for a method that is not a card."""
    method = client().v1.payment_methods.retrieve(payment_method_id)
    card = _get(method, "card")
    return str(_get(card, "fingerprint") or "") if card else ""


def card_error_details(error: stripe.CardError | PaymentError) -> tuple[str, str]:
    """From a ``stripe.CardError`` (or a PaymentIntent's ``last_payment_error``): Stripe's
    reason for staff ("code / decline_code / message") and the card's fingerprint if given."""
    if isinstance(error, PaymentError):
        body, code, message = error, error.code, error.message
    else:
        body = PaymentError.from_stripe(getattr(error, "error", None))
        code = error.code or body.code
        message = error.user_message or body.message
    parts = [code, body.decline_code, message]
    reason = " / ".join(str(p) for p in parts if p)[:500]
    return reason, body.card_fingerprint


def charge_retrieve(charge_id: str) -> Charge:
    return Charge.from_stripe(client().v1.charges.retrieve(charge_id))


def refund_create(
    *, payment_intent_id: str, amount: Money, idempotency_key: str, metadata: dict[str, str]
) -> Refund:
    refund = client().v1.refunds.create(
        params={
            "payment_intent": payment_intent_id,
            "amount": to_minor(amount),
            "metadata": metadata,
        },
        options=_options(idempotency_key),
    )
    return Refund.from_stripe(refund)


def refunds_for_payment_intent(payment_intent_id: str) -> list[Refund]:
    page = client().v1.refunds.list(params={"payment_intent": payment_intent_id, "limit": 100})
    return [Refund.from_stripe(refund) for refund in page.auto_paging_iter()]


def _list_since(resource: Any, since: datetime) -> Iterator[Any]:
    """Objects created at or after ``since``, whichever way the server filters.

    Real Stripe filters with ``created[gte]`` (newest first). localstripe refuses that filter
    (400 on payment intents, 500 on refunds), so against any other server we page through
    everything and filter here.
    """
    threshold = int(since.timestamp())
    params: dict[str, Any] = {"limit": 100}
    if "api.stripe.com" in settings.STRIPE_API_BASE:
        params["created"] = {"gte": threshold}
    for obj in resource.list(params=params).auto_paging_iter():
        if int(_get(obj, "created") or 0) >= threshold:
            yield obj


def payment_intents_since(since: datetime) -> Iterator[PaymentIntent]:
    return (PaymentIntent.from_stripe(o) for o in _list_since(client().v1.payment_intents, since))


def refunds_since(since: datetime) -> Iterator[Refund]:
    return (Refund.from_stripe(o) for o in _list_since(client().v1.refunds, since))


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """Read a field from a StripeObject or a plain dict (webhook payloads, and Stripe's raw
    answers inside this module)."""
    if obj is None:
        return default
    try:
        value = obj[key]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value


get = _get


# --- Webhooks -------------------------------------------------------------------------------


def webhook_event(payload: bytes, signature: str | None) -> Any:
    """Verify the signature (with the timestamp tolerance) and parse the event.

    Raises ``ValueError`` for a malformed body and ``stripe.SignatureVerificationError`` for
    a missing, forged or stale signature.
    """
    return stripe.Webhook.construct_event(
        payload,
        signature or "",
        settings.STRIPE_WEBHOOK_SECRET,
        tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
    )


SignatureVerificationError = stripe.SignatureVerificationError
