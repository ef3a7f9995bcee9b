from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from djmoney.money import Money
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from accounts.client_address import client_address
from config.api import (
    IDEMPOTENCY_HEADER,
    NewestFirstCursorPagination,
    StrictInput,
    error_body,
    error_responses,
    idempotent_phased,
    signed_in_user,
)
from config.errors import InvalidInput, NotFound
from config.throttles import MoneyThrottle, RechargeThrottle
from wallets import stripe_gateway as gateway
from wallets.models import RECHARGE_PUBLIC_CHOICES, Entry, Recharge, TransactionKind
from wallets.selectors import (
    coin_packages_on_sale,
    recharge_for_user,
    recharges_of,
    transaction_owner_description,
    wallet_entries,
    wallet_find,
)
from wallets.services import (
    recharge_create,
    recharge_self_refund,
    spending_limits_effective,
    spending_limits_set,
    stripe_webhook_receive,
)
from wallets.services.limits import (
    UNSET,
    coins_bought_since,
    coins_gifted_since,
    day_start,
    month_start,
)

if TYPE_CHECKING:
    from accounts.models import User


class WalletOutput(serializers.Serializer[Any]):
    coins = serializers.IntegerField()
    frozen = serializers.BooleanField()


class EntryOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.CharField(source="transaction.kind")
    coins = serializers.IntegerField(source="amount")
    balance_after = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    memo = serializers.SerializerMethodField(
        help_text="What happened, in words for the wallet's owner (staff notes stay with staff)."
    )

    def get_memo(self, entry: Entry) -> str:
        return transaction_owner_description(entry.transaction)


class WalletView(APIView):
    @extend_schema(responses={200: WalletOutput, **error_responses(401)}, summary="My wallet")
    def get(self, request: Request) -> Response:
        wallet = wallet_find(user=signed_in_user(request))
        return Response(
            {"coins": wallet.balance if wallet else 0, "frozen": bool(wallet and wallet.is_frozen)}
        )


class EntryFilter(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=TransactionKind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class WalletEntriesView(ListAPIView[Entry]):
    serializer_class = EntryOutput
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self) -> QuerySet[Entry]:
        filters = EntryFilter(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        entries = wallet_entries(user=signed_in_user(self.request))
        if kind := filters.validated_data.get("kind"):
            entries = entries.filter(transaction__kind=kind)
        if since := filters.validated_data.get("since"):
            entries = entries.filter(created_at__gte=since)
        if until := filters.validated_data.get("until"):
            entries = entries.filter(created_at__lt=until)
        return entries

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=TransactionKind.values),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
        ],
        responses={200: EntryOutput(many=True), **error_responses(400, 401)},
        summary="My wallet's ledger entries, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- Coin packages and recharges ------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """A JSON number that is a whole number: "500" or 500.5 or true are refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            if isinstance(data, float) and data.is_integer():
                data = int(data)
            else:
                self.fail("invalid")
        return super().to_internal_value(data)


class MoneyOutput(serializers.Serializer[Any]):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()


def money_json(money: Money) -> dict[str, str]:
    exponent = gateway.currency_exponent(str(money.currency))
    return {"amount": f"{money.amount:.{exponent}f}", "currency": str(money.currency)}


class CoinPackageOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    coins = serializers.IntegerField()
    bonus_coins = serializers.IntegerField()
    total_coins = serializers.IntegerField()
    price = MoneyOutput()
    best_value = serializers.BooleanField()


class CoinPackageListOutput(serializers.Serializer[Any]):
    results = CoinPackageOutput(many=True)
    custom = inline_serializer(
        name="CustomAmount",
        fields={
            "min_coins": serializers.IntegerField(),
            "max_coins": serializers.IntegerField(),
            "unit_price": inline_serializer(
                name="UnitPrice",
                fields={
                    "amount": serializers.DecimalField(max_digits=12, decimal_places=6),
                    "currency": serializers.CharField(),
                },
            ),
        },
    )


class CurrencyQuery(serializers.Serializer[Any]):
    currency = serializers.ChoiceField(choices=list(settings.CURRENCIES), default="USD")


class CoinPackagesView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("currency", OpenApiTypes.STR, enum=list(settings.CURRENCIES))],
        responses={200: CoinPackageListOutput, **error_responses(400)},
        auth=[],
        summary="Coin packages on sale, priced in one currency",
    )
    def get(self, request: Request) -> Response:
        query = CurrencyQuery(data={"currency": request.query_params.get("currency", "USD")})
        query.is_valid(raise_exception=True)
        currency = query.validated_data["currency"]
        results = [
            {
                "id": package.pk,
                "coins": package.coins,
                "bonus_coins": package.bonus_coins,
                "total_coins": package.total_coins,
                "price": money_json(price),
                "best_value": best,
            }
            for package, price, best in coin_packages_on_sale(currency=currency)
        ]
        return Response(
            {
                "results": results,
                "custom": {
                    "min_coins": settings.CUSTOM_COINS_MIN,
                    "max_coins": settings.CUSTOM_COINS_MAX,
                    "unit_price": {
                        "amount": str(settings.COIN_UNIT_PRICE[currency]),
                        "currency": currency,
                    },
                },
            }
        )


class RechargeInput(StrictInput):
    package = StrictIntegerField(required=False, min_value=1, max_value=2**62)
    coins = StrictIntegerField(
        required=False, min_value=settings.CUSTOM_COINS_MIN, max_value=settings.CUSTOM_COINS_MAX
    )
    currency = serializers.ChoiceField(choices=list(settings.CURRENCIES))
    payment_method = serializers.CharField(required=False, max_length=255)
    confirm = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Set to true to go ahead with a purchase above your cooling-off threshold "
        "(`confirm_above` in wallet/limits/); without it such a purchase is refused with 409 "
        "`confirmation_required`. Ignored when you set no threshold.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("package" in attrs) == ("coins" in attrs):
            raise serializers.ValidationError(
                {"package": ["Give either a package id or a number of coins."]}
            )
        return attrs


class RechargeOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    # ``creating`` (a recharge whose Stripe answer is not recorded yet) is shown as pending.
    status = serializers.ChoiceField(choices=RECHARGE_PUBLIC_CHOICES)
    coins = serializers.IntegerField()
    price = MoneyOutput()
    coins_refunded = serializers.IntegerField()
    failure_message = serializers.CharField(allow_blank=True)
    failure_code = serializers.CharField(
        allow_blank=True,
        help_text="Why it failed, in a word: `card_declined` for any declined card (the "
        "message stays generic on purpose); empty otherwise.",
    )
    created_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)


class RechargeCreateOutput(RechargeOutput):
    payment_intent = serializers.CharField()
    client_secret = serializers.CharField()
    publishable_key = serializers.CharField()
    requires_action = serializers.BooleanField()


def recharge_json(recharge: Recharge) -> dict[str, Any]:
    return {
        "id": recharge.pk,
        "status": recharge.public_status,
        "coins": recharge.coins,
        "price": money_json(recharge.price),
        "coins_refunded": recharge.coins_refunded,
        "failure_message": recharge.failure_message,
        "failure_code": recharge.failure_code,
        "created_at": serializers.DateTimeField().to_representation(recharge.created_at),
        "succeeded_at": serializers.DateTimeField().to_representation(recharge.succeeded_at)
        if recharge.succeeded_at
        else None,
    }


def recharge_create_json(recharge: Recharge) -> dict[str, Any]:
    return {
        **recharge_json(recharge),
        "payment_intent": recharge.payment_intent,
        "client_secret": getattr(recharge, "client_secret", ""),
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "requires_action": bool(getattr(recharge, "requires_action", False)),
    }


def recharge_create_from_request(request: Request, *, portal: bool = False) -> Response:
    """Shared by the API and the portal's JSON endpoint (which always has a cooling-off
    threshold: ``COOLING_OFF_ABOVE`` unless the viewer set their own). The recharge commits
    in phases (``wallets.services.purchase``), the key's record with its first one."""
    return idempotent_phased(
        request,
        lambda key, request_hash: _recharge_create_phased(
            request, key=key, request_hash=request_hash, portal=portal
        ),
    )


def _recharge_create_phased(
    request: Request, *, key: str, request_hash: str, portal: bool
) -> Response:
    data = RechargeInput(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    recharge = recharge_create(
        user=signed_in_user(request),
        currency=values["currency"],
        package_id=values.get("package"),
        coins=values.get("coins"),
        payment_method=values.get("payment_method"),
        confirmed=values.get("confirm", False),
        portal=portal,
        client_key=key,
        client_address=client_address(request),
        request_hash=request_hash,
        request_path=request.path,
    )
    return Response(recharge_create_json(recharge), status=status.HTTP_201_CREATED)


class RechargesView(ListAPIView[Recharge]):
    throttle_classes = [MoneyThrottle, RechargeThrottle]
    serializer_class = RechargeOutput

    def get_queryset(self) -> QuerySet[Recharge]:
        return recharges_of(user=signed_in_user(self.request))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        if page is None:
            raise RuntimeError("RechargeList is always paginated")
        return self.get_paginated_response([recharge_json(r) for r in page])

    @extend_schema(
        responses={200: RechargeOutput(many=True), **error_responses(401)},
        summary="My recharges, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=RechargeInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: RechargeCreateOutput,
            **error_responses(
                400,
                401,
                {403: ["age_restricted", "limit_exceeded", "spending_limit_exceeded"]},
                {409: ["confirmation_required"]},
                423,
                {429: ["too_many_declines"]},
                {502: ["payment_provider_error"]},
                {503: ["payment_provider_unavailable", "service_busy"]},
            ),
        },
        summary="Buy coins: create a recharge and its Stripe PaymentIntent",
        description=(
            "Give `package` (an id from coin-packages/) or a custom number of `coins`, and a "
            "`currency`. Confirm the card with Stripe.js using `client_secret`, or send "
            "`payment_method` (a PaymentMethod id made with Stripe's SDK) and the server "
            "confirms at once: then `status` is succeeded, failed (`failure_code`, "
            "`failure_message`), or "
            "pending with `requires_action` (finish 3-D Secure with Stripe's SDK). Coins are "
            "credited when Stripe reports the payment succeeded. 403 `age_restricted` under "
            "18, 403 `limit_exceeded` over the daily limit, 423 `wallet_frozen`. Viewer "
            "protections (additive): 403 `spending_limit_exceeded` over your own daily or "
            "monthly limit (wallet/limits/); 409 `confirmation_required` above your own "
            "`confirm_above` threshold unless the body has `confirm: true` (only when you set "
            "a threshold). A declined card is `status` failed with `failure_code` "
            "`card_declined` and the same generic message whatever the bank's reason. "
            "Declines are limited per account, per network address and per card "
            "(RECHARGE_DECLINES_MAX in RECHARGE_DECLINE_WINDOW_SECONDS, 5 an hour): past that, "
            "every purchase is refused with 429 `too_many_declines` and Retry-After. Purchases "
            "have their own rate limit per account (THROTTLE_RECHARGE, 429 `throttled`). "
            "Stripe unreachable: 503 `payment_provider_unavailable` with Retry-After; the "
            "recharge waits where it stopped, so send the same request with the same "
            "Idempotency-Key again and it goes on (nothing is charged twice). While its Stripe "
            "answer is not recorded yet a recharge shows as `pending`."
        ),
    )
    def post(self, request: Request) -> Response:
        return recharge_create_from_request(request)


class RechargeDetailView(APIView):
    @extend_schema(
        responses={200: RechargeOutput, **error_responses(401, 404)}, summary="One of my recharges"
    )
    def get(self, request: Request, recharge_id: int) -> Response:
        recharge = recharge_for_user(user=signed_in_user(request), recharge_id=recharge_id)
        if recharge is None:
            raise NotFound("No such recharge.")
        return Response(recharge_json(recharge))


# --- Stripe webhook -------------------------------------------------------------------------


class StripeWebhookView(APIView):
    """Stripe calls this; the signature is the authentication (no session, no CSRF)."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type[BaseThrottle]] = []

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: inline_serializer(
                name="WebhookAck",
                fields={"received": serializers.BooleanField(), "result": serializers.CharField()},
            ),
            **error_responses({400: ["invalid_signature"]}, {500: ["webhook_processing_failed"]}),
        },
        auth=[],
        summary="Stripe webhook (Stripe-Signature verified)",
        description=(
            "400: the body is not a Stripe event or the signature is missing, forged or stale "
            "(nothing stored). 500 `webhook_processing_failed`: a verified event could not be "
            "applied; it is logged with its id and stored unprocessed, Stripe delivers it "
            "again, and reconciliation opens a `webhook_event_failed` discrepancy for staff."
        ),
    )
    def post(self, request: Request) -> Response:
        payload = request.body
        try:
            event = stripe_webhook_receive(
                payload=payload, signature=request.headers.get("Stripe-Signature")
            )
        except gateway.SignatureVerificationError:
            return Response(
                error_body("invalid_signature", "The Stripe-Signature header is not valid."),
                status=400,
            )
        except ValueError:
            # Only a body that is not a Stripe event; an error applying a verified event is
            # WebhookProcessingFailed (500, so Stripe retries).
            raise InvalidInput("The body is not a Stripe event.")
        return Response({"received": True, "result": event.result})


# --- Viewer protections: self refund, spending limits ---------------------------------------


class RechargeSelfRefundOutput(serializers.Serializer[Any]):
    recharge = RechargeOutput()
    refund = inline_serializer(
        name="SelfRefund",
        fields={
            "id": serializers.IntegerField(),
            "coins": serializers.IntegerField(),
            "amount": MoneyOutput(),
            "created_at": serializers.DateTimeField(),
        },
    )
    wallet = WalletOutput()


def self_refund_from_request(
    request: Request, recharge_id: int, *, key: str, request_hash: str
) -> Response:
    """The refund commits in phases (``wallets.services.self_refund``), the key's record with
    its first one."""
    refund = recharge_self_refund(
        user=signed_in_user(request),
        recharge_id=recharge_id,
        request_key=key,
        request_hash=request_hash,
        request_path=request.path,
    )
    recharge = recharge_for_user(user=signed_in_user(request), recharge_id=recharge_id)
    if recharge is None:  # the refund above found it: only a concurrent delete could
        raise NotFound("No such recharge.")
    wallet = wallet_find(user=signed_in_user(request))
    return Response(
        {
            "recharge": recharge_json(recharge),
            "refund": {
                "id": refund.pk,
                "coins": refund.coins,
                "amount": money_json(refund.amount),
                "created_at": serializers.DateTimeField().to_representation(refund.created_at),
            },
            "wallet": {
                "coins": wallet.balance if wallet else 0,
                "frozen": bool(wallet and wallet.is_frozen),
            },
        },
        status=status.HTTP_201_CREATED,
    )


class RechargeSelfRefundView(APIView):
    throttle_classes = [MoneyThrottle]

    @extend_schema(
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: RechargeSelfRefundOutput,
            **error_responses(
                401,
                404,
                {
                    409: [
                        "coins_already_spent",
                        "refund_window_closed",
                        "already_refunded",
                        "refund_not_allowed",
                    ]
                },
                423,
                429,
                {502: ["payment_provider_error"]},
                {503: ["payment_provider_unavailable", "service_busy"]},
            ),
        },
        summary="Refund my recharge (unspent coins, within 48 hours)",
        description=(
            "Refunds the whole recharge to the card and removes its coins from the wallet. "
            "Allowed once, within `SELF_REFUND_WINDOW_HOURS` (48) of the payment, and only "
            "while the wallet still holds all of the recharge's coins (spent coins are not "
            "refundable). 409 codes: `coins_already_spent`, `refund_window_closed`, "
            "`already_refunded`, `refund_not_allowed` (not a paid recharge); 423 "
            "`wallet_frozen`. The coins leave the wallet before Stripe is asked; Stripe "
            "unreachable is 503 `payment_provider_unavailable` with `Retry-After` (the refund "
            "waits; a retry with the same Idempotency-Key finishes it, or the server does); 502 "
            "`payment_provider_error` likewise; Stripe refusing the refund gives the coins "
            "back (409 `refund_not_allowed`)."
        ),
    )
    def post(self, request: Request, recharge_id: int) -> Response:
        return idempotent_phased(
            request,
            lambda key, request_hash: self_refund_from_request(
                request, recharge_id, key=key, request_hash=request_hash
            ),
        )


class LimitsPending(serializers.Serializer[Any]):
    limit = serializers.IntegerField(allow_null=True)
    effective_at = serializers.DateTimeField()


class SpendingLimitsOutput(serializers.Serializer[Any]):
    daily_limit = serializers.IntegerField(allow_null=True)
    monthly_limit = serializers.IntegerField(allow_null=True)
    confirm_above = serializers.IntegerField(allow_null=True)
    daily_limit_pending = LimitsPending(allow_null=True)
    monthly_limit_pending = LimitsPending(allow_null=True)
    bought_today = serializers.IntegerField()
    bought_this_month = serializers.IntegerField()
    gifted_today = serializers.IntegerField()
    gifted_this_month = serializers.IntegerField()


class NullableCoins(StrictIntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, min_value=0, max_value=10**12, **kwargs)


class SpendingLimitsInput(StrictInput):
    daily_limit = NullableCoins(help_text="Coins per UTC day; null for none of your own.")
    monthly_limit = NullableCoins(help_text="Coins per UTC calendar month; null for none.")
    confirm_above = NullableCoins(
        help_text="Purchases above this many coins need `confirm: true`; null for none."
    )


def spending_limits_json(user: "User") -> dict[str, Any]:
    limits = spending_limits_effective(user_id=user.pk)
    now = timezone.now()

    def pending(value: int | None, at: datetime | None) -> dict[str, Any] | None:
        if at is None:
            return None
        return {"limit": value, "effective_at": serializers.DateTimeField().to_representation(at)}

    return {
        "daily_limit": limits.daily,
        "monthly_limit": limits.monthly,
        "confirm_above": limits.confirm_above,
        "daily_limit_pending": pending(limits.daily_next, limits.daily_next_at),
        "monthly_limit_pending": pending(limits.monthly_next, limits.monthly_next_at),
        "bought_today": coins_bought_since(user=user, since=day_start(now)),
        "bought_this_month": coins_bought_since(user=user, since=month_start(now)),
        "gifted_today": coins_gifted_since(user=user, since=day_start(now)),
        "gifted_this_month": coins_gifted_since(user=user, since=month_start(now)),
    }


class SpendingLimitsView(APIView):
    @extend_schema(
        responses={200: SpendingLimitsOutput, **error_responses(401)},
        summary="My spending limits and what I bought and gifted this day and month",
    )
    def get(self, request: Request) -> Response:
        return Response(spending_limits_json(signed_in_user(request)))

    @extend_schema(
        request=SpendingLimitsInput,
        responses={200: SpendingLimitsOutput, **error_responses(400, 401)},
        summary="Set my spending limits",
        description=(
            "Limits cap the coins you buy and, separately, the coins you gift, per UTC day "
            "and per calendar month (on top of the platform's limits). Lowering a limit (or "
            "setting one) applies at once; raising or removing one (null) applies 24 hours "
            "later (see `*_pending`). Fields left out are unchanged. Over a limit, purchases "
            "and gifts are refused with 403 `spending_limit_exceeded`."
        ),
    )
    def put(self, request: Request) -> Response:
        data = SpendingLimitsInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        spending_limits_set(
            user=signed_in_user(request),
            daily_limit=values.get("daily_limit", UNSET),
            monthly_limit=values.get("monthly_limit", UNSET),
            confirm_above=values.get("confirm_above", UNSET),
        )
        return Response(spending_limits_json(signed_in_user(request)))
