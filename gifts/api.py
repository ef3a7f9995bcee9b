import hashlib
import json
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from config.api import (
    IDEMPOTENCY_HEADER,
    StrictInput,
    error_responses,
    idempotency_key,
    idempotency_request_hash,
    idempotent,
    idempotent_refusal,
    replayed,
    signed_in_user,
)
from config.errors import DomainError, IdempotencyConflict
from config.throttles import MoneyThrottle
from creators.selectors import creator_find
from gifts.badges import badges_by_username
from gifts.models import Gift
from gifts.quote import gift_quote, money_dict, quote_currency
from gifts.selectors import METRICS, PERIODS, leaderboard
from gifts.services import (
    MESSAGE_MAX,
    QUANTITY_MAX,
    CreatorNotFound,
    GiftAnswer,
    GiftNotFound,
    gift_send,
    gift_send_answer,
    gift_send_uses_sql,
)
from wallets.api import MoneyOutput

# --- Catalog --------------------------------------------------------------------------------


class GiftOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    coins = serializers.IntegerField()
    image_url = serializers.URLField()
    category = serializers.CharField()
    available_until = serializers.DateTimeField(allow_null=True)


class GiftListOutput(serializers.Serializer[Any]):
    results = GiftOutput(many=True)
    next = serializers.URLField(allow_null=True)


COUNTRY_PARAM = OpenApiParameter(
    "country",
    OpenApiTypes.STR,
    description="ISO 3166 alpha-2 code: hide gifts not offered there.",
)


class GiftListView(APIView):
    """The gifts on sale now. Cache-friendly: ETag and Last-Modified, 304 when unchanged."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[COUNTRY_PARAM],
        responses={200: GiftListOutput, 304: OpenApiResponse(description="Not modified")},
        summary="List the gifts available now",
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        country = (request.query_params.get("country") or "").strip().upper()[:2] or None
        every = list(Gift.objects.all())
        # The list changes when a row changes or when an availability window opens or closes.
        moments = [g.updated_at for g in every]
        moments += [
            m for g in every for m in (g.available_from, g.available_until) if m and m <= now
        ]
        last_modified = max(moments) if moments else None
        gifts = sorted(
            (g for g in every if g.is_available(now, country=country)),
            key=lambda g: (g.sort_order, g.coins, g.pk),
        )
        data = {
            "results": [
                {
                    "id": g.pk,
                    "slug": g.slug,
                    "name": g.name,
                    "coins": g.coins,
                    "image_url": request.build_absolute_uri(g.image_url),
                    "category": g.category,
                    "available_until": g.available_until.isoformat() if g.available_until else None,
                }
                for g in gifts
            ],
            "next": None,
        }
        etag = (
            '"' + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32] + '"'
        )
        if_none_match = request.headers.get("If-None-Match")
        since = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
        not_modified = (
            etag in [t.strip() for t in if_none_match.split(",")]
            if if_none_match
            else (
                since is not None
                and last_modified is not None
                and int(last_modified.timestamp()) <= since
            )
        )
        response = Response(None if not_modified else data, status=304 if not_modified else 200)
        response["ETag"] = etag
        if last_modified is not None:
            response["Last-Modified"] = http_date(last_modified.timestamp())
        response["Cache-Control"] = "public, max-age=60"
        response["Vary"] = "Accept"
        return response


# --- Sending --------------------------------------------------------------------------------


class GiftSendInput(StrictInput):
    creator = serializers.CharField(max_length=30)
    gift = serializers.CharField(max_length=40)
    quantity = serializers.IntegerField(min_value=1, max_value=QUANTITY_MAX, default=1)
    live_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$", required=False, allow_blank=True, trim_whitespace=False
    )
    video_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$", required=False, allow_blank=True, trim_whitespace=False
    )
    message = serializers.CharField(
        max_length=MESSAGE_MAX, required=False, allow_blank=True, trim_whitespace=False
    )
    goal = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2**62,
        help_text="One of the creator's open goals (GET creators/{handle}/goals/) this gift "
        "counts toward. For an all-or-nothing goal the coins are held until its deadline.",
    )
    currency = serializers.ChoiceField(
        choices=settings.CURRENCIES,
        required=False,
        help_text="The currency `creator_value` is shown in (default PAYOUT_CURRENCY).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("live_id") and attrs.get("video_id"):
            raise serializers.ValidationError({"video_id": ["Give live_id or video_id, not both."]})
        return attrs


class WalletCoins(serializers.Serializer[Any]):
    coins = serializers.IntegerField()


class GiftSendOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    coins_spent = serializers.IntegerField()
    diamonds = serializers.IntegerField()
    goal = serializers.IntegerField(allow_null=True)
    wallet = WalletCoins()
    creator_value = MoneyOutput(help_text="What the creator receives of this gift (≈, see quote).")


def gift_answer(
    values: dict[str, Any], *, sender: User, key: str, request_hash: str, path: str
) -> GiftAnswer:
    """The one-round-trip gift for a checked ``GiftSendInput`` (this view and the hot path)."""
    return gift_send_answer(
        sender=sender,
        creator_handle=values["creator"],
        gift_slug=values["gift"],
        quantity=values["quantity"],
        live_id=values.get("live_id"),
        video_id=values.get("video_id"),
        message=values.get("message", ""),
        client_key=key,
        request_hash=request_hash,
        path=path,
        goal=values.get("goal"),
    )


def _with_creator_value(body: dict[str, Any], currency: str | None) -> dict[str, Any]:
    """The send answer plus ``creator_value``: computed from the answer, no database read."""
    if "coins_spent" not in body:
        return body
    quote = gift_quote(coins=body["coins_spent"], diamonds=body["diamonds"], currency=currency)
    return {"goal": None, **body, "creator_value": money_dict(quote.creator_value)}


class GiftSendView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [MoneyThrottle]

    @extend_schema(
        request=GiftSendInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: GiftSendOutput,
            **error_responses(
                {400: ["self_gift", "gift_unavailable", "message_blocked"]},
                401,
                402,
                {
                    403: [
                        "age_restricted",
                        "creator_cannot_receive",
                        "daily_limit_exceeded",
                        "spending_limit_exceeded",
                    ]
                },
                {404: ["creator_not_found", "gift_not_found", "goal_not_found"]},
                {409: ["goal_closed"]},
                423,
                429,
            ),
        },
        summary="Send a gift to a creator",
        description=(
            "Debits the sender's coins and credits the creator's pending diamonds in one "
            "transaction (toward an all-or-nothing `goal`: holds the coins until its deadline). "
            "`creator_value` is the creator's share of it (as GET gifts/quote/). Error codes: "
            "`age_restricted`, `wallet_frozen`, "
            "`daily_limit_exceeded`, `gift_not_found`, `gift_unavailable`, `self_gift`, "
            "`creator_not_found`, `creator_cannot_receive`, `insufficient_funds`, "
            "`message_blocked`, `goal_not_found` (404: no such goal of this creator), "
            "`goal_closed` (409: settled or past its deadline), `validation_error`."
        ),
    )
    def post(self, request: Request) -> Response:
        if gift_send_uses_sql():
            return self._post_one_round_trip(request)

        def handler() -> Response:
            data = GiftSendInput(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
            event = gift_send(
                sender=signed_in_user(request),
                creator_handle=values["creator"],
                gift_slug=values["gift"],
                quantity=values["quantity"],
                live_id=values.get("live_id"),
                video_id=values.get("video_id"),
                message=values.get("message", ""),
                client_key=request.headers["Idempotency-Key"].strip(),
                goal=values.get("goal"),
            )
            body = {
                "id": event.pk,
                "coins_spent": event.coins,
                "diamonds": event.diamonds,
                "goal": event.goal_id,
                "wallet": {"coins": event.wallet_coins},
            }
            return Response(
                _with_creator_value(body, values.get("currency")), status=status.HTTP_201_CREATED
            )

        return idempotent(request, handler)

    def _post_one_round_trip(self, request: Request) -> Response:
        """PostgreSQL: the gift and its Idempotency-Key answer are one database call.

        Same contract as ``idempotent``: a retry with the key and body replays the first
        answer (refusals too), another body is 409.
        """
        key = idempotency_key(request)
        body_hash = idempotency_request_hash(request)
        try:
            data = GiftSendInput(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
            answer = gift_answer(
                values,
                sender=signed_in_user(request),
                key=key,
                request_hash=body_hash,
                path=request.path,
            )
        except IdempotencyConflict:
            raise
        except (DomainError, exceptions.APIException) as exc:
            return idempotent_refusal(request, key=key, request_hash=body_hash, exc=exc)
        # The function stores the answer without creator_value (settings, not data): it is
        # added here from the answer's own coins and diamonds, replays included.
        body = _with_creator_value(answer.body, values.get("currency"))
        if answer.replayed:
            return replayed(answer.status, body)
        return Response(body, status=answer.status)


# --- Leaderboards ---------------------------------------------------------------------------


class BadgeOutput(serializers.Serializer[Any]):
    kind = serializers.CharField(help_text="member, level or top3")
    label = serializers.CharField()  # type: ignore[assignment]  # a declared field, not Field.label
    value = serializers.IntegerField(help_text="member: months; level: the level; top3: rank")


class LeaderRow(serializers.Serializer[Any]):
    username = serializers.CharField()
    coins = serializers.IntegerField(required=False, help_text="metric=coins")
    days = serializers.IntegerField(required=False, help_text="metric=days")
    badges = BadgeOutput(many=True)


class LeaderboardOutput(serializers.Serializer[Any]):
    period = serializers.ChoiceField(choices=PERIODS)
    metric = serializers.ChoiceField(choices=METRICS)
    results = LeaderRow(many=True)


class LeaderboardView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "period",
                OpenApiTypes.STR,
                enum=list(PERIODS),
                default="day",
                description="day: today (UTC); week: since Monday (UTC); month: since the "
                "1st (UTC); all: all time.",
            ),
            OpenApiParameter(
                "metric",
                OpenApiTypes.STR,
                enum=list(METRICS),
                default="coins",
                description="coins: most coins; days: most distinct days with a gift (UTC), "
                "so steady support outranks one big night. Rows carry `coins` or `days`.",
            ),
        ],
        responses={200: LeaderboardOutput, **error_responses(400, {404: ["creator_not_found"]})},
        summary="Top gifters of a creator",
    )
    def get(self, request: Request, handle: str) -> Response:
        period = request.query_params.get("period", "day")
        if period not in PERIODS:
            raise serializers.ValidationError({"period": [f"One of: {', '.join(PERIODS)}."]})
        metric = request.query_params.get("metric", "coins")
        if metric not in METRICS:
            raise serializers.ValidationError({"metric": [f"One of: {', '.join(METRICS)}."]})
        creator = creator_find(handle=handle)
        if creator is None:
            raise CreatorNotFound()
        rows = leaderboard(creator_id=creator.pk, period=period, metric=metric)
        badges = badges_by_username(creator_id=creator.pk, usernames=[r["username"] for r in rows])
        results = [{**row, "badges": badges.get(row["username"], [])} for row in rows]
        return Response({"period": period, "metric": metric, "results": results})


# --- The split shown before paying ------------------------------------------------------------


class ExactMoneyOutput(serializers.Serializer[Any]):
    amount = serializers.DecimalField(
        max_digits=20, decimal_places=8, help_text="Exact: fractions of a cent are kept."
    )
    currency = serializers.CharField()


class GiftQuoteOutput(serializers.Serializer[Any]):
    coins = serializers.IntegerField(help_text="What the gift costs the viewer, in coins.")
    diamonds = serializers.IntegerField(help_text="What the creator is credited.")
    creator_value = MoneyOutput(help_text="The creator's share, in `currency`, to the cent.")
    platform_value = MoneyOutput(help_text="The rest of the coins' price, in `currency`.")
    rate = serializers.FloatField(help_text="The creator's share of the price, 0-1.")
    price = MoneyOutput(help_text="The coins' price at the custom-amount unit price.")
    payout_value = ExactMoneyOutput(
        help_text="Diamonds × DIAMOND_VALUE in PAYOUT_CURRENCY: exactly what the payout "
        "statement lists for this gift."
    )


class GiftQuoteView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("creator", OpenApiTypes.STR, required=True, description="Handle"),
            OpenApiParameter("gift", OpenApiTypes.STR, required=True, description="Gift slug"),
            OpenApiParameter(
                "quantity",
                {"type": "integer", "minimum": 1, "maximum": QUANTITY_MAX},
                default=1,
            ),
            OpenApiParameter(
                "currency", OpenApiTypes.STR, enum=list(settings.CURRENCIES), default="USD"
            ),
        ],
        responses={
            200: GiftQuoteOutput,
            **error_responses(400, {404: ["creator_not_found", "gift_not_found"]}),
        },
        summary="What a gift is worth to the creator, before paying",
        description=(
            "coins → diamonds → the creator's and the platform's share in the viewer's "
            "currency (docs/goals.md, 'The split'). Errors: `validation_error`, "
            "`creator_not_found`, `gift_not_found`."
        ),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        raw_quantity = params.get("quantity", "1").strip()
        if not (raw_quantity.isascii() and raw_quantity.isdigit()) or not (
            1 <= int(raw_quantity) <= QUANTITY_MAX
        ):
            raise serializers.ValidationError(
                {"quantity": [f"A whole number from 1 to {QUANTITY_MAX}."]}
            )
        currency = quote_currency(params.get("currency"))
        creator = creator_find(handle=(params.get("creator") or "").strip().lower()[:30])
        if creator is None or not creator.is_active:
            raise CreatorNotFound()
        slug = (params.get("gift") or "").strip().lower()[:40]
        gift = Gift.objects.filter(slug=slug).first() if slug else None
        if gift is None:
            raise GiftNotFound()
        quote = gift_quote(coins=gift.coins * int(raw_quantity), currency=currency)
        return Response(quote.as_dict())
