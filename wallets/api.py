from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    IDEMPOTENCY_HEADER,
    MoneyThrottle,
    NewestFirstCursorPagination,
    error_body,
    error_responses,
    idempotent,
)
from config.errors import InvalidInput, NotFound
from wallets import stripe_gateway as gateway
from wallets.models import Recharge, RechargeStatus, TransactionKind
from wallets.selectors import (
    coin_packages_on_sale,
    recharge_for_user,
    recharges_of,
    wallet_entries,
    wallet_find,
)
from wallets.services import recharge_create, stripe_webhook_receive


class WalletOutput(serializers.Serializer):
    coins = serializers.IntegerField()
    frozen = serializers.BooleanField()


class EntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(source="transaction.kind")
    coins = serializers.IntegerField(source="amount")
    balance_after = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    memo = serializers.CharField(source="transaction.memo")


class WalletView(APIView):
    @extend_schema(responses={200: WalletOutput, **error_responses(401)}, summary="My wallet")
    def get(self, request):
        wallet = wallet_find(user=request.user)
        return Response(
            {"coins": wallet.balance if wallet else 0, "frozen": bool(wallet and wallet.is_frozen)}
        )


class EntryFilter(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TransactionKind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class WalletEntriesView(ListAPIView):
    serializer_class = EntryOutput
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self):
        filters = EntryFilter(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        entries = wallet_entries(user=self.request.user)
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
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- Coin packages and recharges ------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """A JSON number that is a whole number: "500" or 500.5 or true are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            if isinstance(data, float) and data.is_integer():
                data = int(data)
            else:
                self.fail("invalid")
        return super().to_internal_value(data)


class MoneyOutput(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()


def money_json(money) -> dict:
    exponent = gateway.currency_exponent(str(money.currency))
    return {"amount": f"{money.amount:.{exponent}f}", "currency": str(money.currency)}


class CoinPackageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    coins = serializers.IntegerField()
    bonus_coins = serializers.IntegerField()
    total_coins = serializers.IntegerField()
    price = MoneyOutput()
    best_value = serializers.BooleanField()


class CoinPackageListOutput(serializers.Serializer):
    results = CoinPackageOutput(many=True)
    custom = inline_serializer(
        name="CustomAmount",
        fields={
            "min_coins": serializers.IntegerField(),
            "max_coins": serializers.IntegerField(),
            "unit_price": MoneyOutput(),
        },
    )


class CurrencyQuery(serializers.Serializer):
    currency = serializers.ChoiceField(choices=list(settings.CURRENCIES), default="USD")


class CoinPackagesView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("currency", OpenApiTypes.STR, enum=list(settings.CURRENCIES))],
        responses={200: CoinPackageListOutput, **error_responses(400)},
        auth=[],
        summary="Coin packages on sale, priced in one currency",
    )
    def get(self, request):
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


class RechargeInput(serializers.Serializer):
    package = StrictIntegerField(required=False, min_value=1, max_value=2**62)
    coins = StrictIntegerField(required=False)
    currency = serializers.ChoiceField(choices=list(settings.CURRENCIES))
    payment_method = serializers.CharField(required=False, max_length=255)

    def validate(self, attrs):
        if ("package" in attrs) == ("coins" in attrs):
            raise serializers.ValidationError(
                {"package": ["Give either a package id or a number of coins."]}
            )
        return attrs


class RechargeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RechargeStatus.choices)
    coins = serializers.IntegerField()
    price = MoneyOutput()
    coins_refunded = serializers.IntegerField()
    failure_message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)


class RechargeCreateOutput(RechargeOutput):
    payment_intent = serializers.CharField()
    client_secret = serializers.CharField()
    publishable_key = serializers.CharField()
    requires_action = serializers.BooleanField()


def recharge_json(recharge: Recharge) -> dict:
    return {
        "id": recharge.pk,
        "status": recharge.status,
        "coins": recharge.coins,
        "price": money_json(recharge.price),
        "coins_refunded": recharge.coins_refunded,
        "failure_message": recharge.failure_message,
        "created_at": serializers.DateTimeField().to_representation(recharge.created_at),
        "succeeded_at": serializers.DateTimeField().to_representation(recharge.succeeded_at)
        if recharge.succeeded_at
        else None,
    }


def recharge_create_json(recharge: Recharge) -> dict:
    return {
        **recharge_json(recharge),
        "payment_intent": recharge.payment_intent,
        "client_secret": getattr(recharge, "client_secret", ""),
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "requires_action": bool(getattr(recharge, "requires_action", False)),
    }


def recharge_create_from_request(request) -> Response:
    """Shared by the API and the portal's JSON endpoint."""
    data = RechargeInput(data=request.data)
    data.is_valid(raise_exception=True)
    values = data.validated_data
    recharge = recharge_create(
        user=request.user,
        currency=values["currency"],
        package_id=values.get("package"),
        coins=values.get("coins"),
        payment_method=values.get("payment_method"),
    )
    return Response(recharge_create_json(recharge), status=status.HTTP_201_CREATED)


class RechargesView(ListAPIView):
    throttle_classes = [MoneyThrottle]
    serializer_class = RechargeOutput

    def get_queryset(self):
        return recharges_of(user=self.request.user)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None
        return self.get_paginated_response([recharge_json(r) for r in page])

    @extend_schema(
        responses={200: RechargeOutput(many=True), **error_responses(401)},
        summary="My recharges, newest first",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=RechargeInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: RechargeCreateOutput, **error_responses(400, 401, 403, 409, 423, 429)},
        summary="Buy coins: create a recharge and its Stripe PaymentIntent",
        description=(
            "Give `package` (an id from coin-packages/) or a custom number of `coins`, and a "
            "`currency`. Confirm the card with Stripe.js using `client_secret`, or send "
            "`payment_method` (a PaymentMethod id made with Stripe's SDK) and the server "
            "confirms at once: then `status` is succeeded, failed (`failure_message`), or "
            "pending with `requires_action` (finish 3-D Secure with Stripe's SDK). Coins are "
            "credited when Stripe reports the payment succeeded. 403 `age_restricted` under "
            "18, 403 `limit_exceeded` over the daily limit, 423 `wallet_frozen`."
        ),
    )
    def post(self, request):
        return idempotent(request, lambda: recharge_create_from_request(request))


class RechargeDetailView(APIView):
    @extend_schema(
        responses={200: RechargeOutput, **error_responses(401, 404)}, summary="One of my recharges"
    )
    def get(self, request, recharge_id: int):
        recharge = recharge_for_user(user=request.user, recharge_id=recharge_id)
        if recharge is None:
            raise NotFound("No such recharge.")
        return Response(recharge_json(recharge))


# --- Stripe webhook -------------------------------------------------------------------------


class StripeWebhookView(APIView):
    """Stripe calls this; the signature is the authentication (no session, no CSRF)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: inline_serializer(
                name="WebhookAck",
                fields={"received": serializers.BooleanField(), "result": serializers.CharField()},
            ),
            **error_responses(400),
        },
        auth=[],
        summary="Stripe webhook (Stripe-Signature verified)",
    )
    def post(self, request):
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
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("The body is not a Stripe event.")
        return Response({"received": True, "result": event.result})
