"""Buying coins: the packages on sale, recharges (create, list, one), and the viewer's own
refund of a recharge."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.client_address import client_address
from config.api import IDEMPOTENCY_HEADER, error_responses, idempotent_phased, signed_in_user
from config.errors import NotFound
from config.throttles import MoneyThrottle, RechargeThrottle
from wallets.api.serializers import (
    CoinPackageListOutput,
    CoinPackageOutput,
    CurrencyQuery,
    PackageOnSale,
    RechargeCreateOutput,
    RechargeInput,
    RechargeOutput,
    RechargeSelfRefundOutput,
    SelfRefund,
    wallet_data,
)
from wallets.models import Recharge
from wallets.selectors import coin_packages_on_sale, recharge_for_user, recharges_of, wallet_find
from wallets.services import recharge_create, recharge_self_refund


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
        on_sale = [
            PackageOnSale(package, price, best)
            for package, price, best in coin_packages_on_sale(currency=currency)
        ]
        return Response(
            {
                "results": [CoinPackageOutput(item).data for item in on_sale],
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
    return Response(RechargeCreateOutput(recharge).data, status=status.HTTP_201_CREATED)


class RechargesView(ListAPIView[Recharge]):
    throttle_classes = [MoneyThrottle, RechargeThrottle]
    serializer_class = RechargeOutput

    def get_queryset(self) -> QuerySet[Recharge]:
        return recharges_of(user=signed_in_user(self.request))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        if page is None:
            raise RuntimeError("RechargeList is always paginated")
        return self.get_paginated_response([RechargeOutput(r).data for r in page])

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
        return Response(RechargeOutput(recharge).data)


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
            "recharge": RechargeOutput(recharge).data,
            "refund": SelfRefund(refund).data,
            "wallet": wallet_data(wallet),
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
