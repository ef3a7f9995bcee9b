from typing import Any, cast

from django.db.models import QuerySet
from djmoney.money import Money
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.serializer_helpers import ReturnDict
from rest_framework.views import APIView

from config.api import (
    IDEMPOTENCY_HEADER,
    StrictInput,
    error_responses,
    idempotent,
    signed_in_user,
)
from config.errors import NotFound
from payouts.instant import payout_instant_create, payout_instant_quote
from payouts.models import Payout, PayoutMethod, PayoutStatus, Rail
from payouts.selectors import (
    StatusWords,
    next_payout_estimate,
    payout_failure_words,
    payout_method_for_user,
    payout_status_words,
    payouts_for_user,
)
from payouts.services import creator_required, payout_method_set
from payouts.statements import GiftTrace, gift_trace, payout_for_creator, payout_statement


@extend_schema_field(
    {
        "type": "object",
        "required": ["amount", "currency"],
        "properties": {
            "amount": {"type": "string", "format": "decimal", "example": "12.34"},
            "currency": {"type": "string", "example": "USD"},
        },
    }
)
class MoneyOutputField(serializers.Field[Money, Any, dict[str, str], Any]):
    def to_representation(self, value: Money) -> dict[str, str]:
        return {"amount": str(value.amount), "currency": str(value.currency)}


class PayoutOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    diamonds = serializers.IntegerField()
    amount = MoneyOutputField()
    fee = MoneyOutputField(
        help_text="Kept from an instant payout (INSTANT_PAYOUT_FEE_PCT); 0 for the weekly batch."
    )
    is_instant = serializers.BooleanField(help_text='"Cash out now" rather than the batch.')
    status = serializers.ChoiceField(choices=PayoutStatus.choices)
    rail = serializers.ChoiceField(choices=Rail.choices)
    failure_reason = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    held_until = serializers.DateTimeField(
        allow_null=True,
        help_text="Set while the payout waits because its destination was set or changed less "
        "than PAYOUT_DESTINATION_HOLD_HOURS ago: it goes out after this moment "
        "(`status_reason` says why). Null when no such hold applies.",
    )
    expected_at = serializers.SerializerMethodField(
        help_text="When the money should reach the creator (paid: when it was paid; held or "
        "failed: the earliest date if the creator acts now; null when it cannot be known)."
    )
    status_reason = serializers.SerializerMethodField(
        help_text="Why the payout is in its status, in words (held, failed: why)."
    )
    next_step = serializers.SerializerMethodField(
        help_text="What the creator can do about it (empty when nothing is needed)."
    )
    statement_url = serializers.SerializerMethodField()

    def to_representation(self, payout: Payout) -> dict[str, Any]:
        data = super().to_representation(payout)
        if payout.status not in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING):
            data["held_until"] = None  # a past hold of a payout that has moved on
        return data

    def get_failure_reason(self, payout: Payout) -> str:
        return payout_failure_words(payout)

    def _words(self, payout: Payout) -> StatusWords:
        cache: dict[int, StatusWords] = cast(dict[str, Any], self.context).setdefault("words", {})
        if payout.pk not in cache:
            cache[payout.pk] = payout_status_words(payout, method=self.context.get("method"))
        return cache[payout.pk]

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_expected_at(self, payout: Payout) -> str | None:
        expected = self._words(payout).expected_at
        return serializers.DateTimeField().to_representation(expected) if expected else None

    def get_status_reason(self, payout: Payout) -> str:
        return self._words(payout).status_reason

    def get_next_step(self, payout: Payout) -> str:
        return self._words(payout).next_step

    def get_statement_url(self, payout: Payout) -> str:
        return f"/api/v1/payouts/{payout.pk}/statement/"


class PayoutFilter(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=PayoutStatus.choices, required=False)


class InstantPayoutInput(StrictInput):
    diamonds = serializers.IntegerField(required=False, min_value=1, max_value=2**62)


class InstantQuery(serializers.Serializer[Any]):
    diamonds = serializers.IntegerField(required=False, min_value=1, max_value=2**62)


class PayoutListView(ListAPIView[Payout]):
    serializer_class = PayoutOutput

    def get_queryset(self) -> QuerySet[Payout]:
        filters = PayoutFilter(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        user = signed_in_user(self.request)
        creator_required(user=user)
        return payouts_for_user(user=user, status=filters.validated_data.get("status"))

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if self.request.user.is_authenticated:
            context["method"] = payout_method_for_user(user=signed_in_user(self.request))
        return context

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=PayoutStatus.values)],
        responses={
            200: PayoutOutput(many=True),
            **error_responses(400, 401, {403: ["not_a_creator"]}),
        },
        summary="My payouts, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=InstantPayoutInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: PayoutOutput,
            **error_responses(
                {400: ["below_minimum"]},
                401,
                402,
                {403: ["not_a_creator"]},
                {409: ["payout_open", "payout_method_unverified"]},
            ),
        },
        summary="Cash out now: an instant payout of my available diamonds",
        description='All available diamonds, or `{"diamonds": N}`. The fee '
        "(`INSTANT_PAYOUT_FEE_PCT` of the value) is kept from the amount sent; see it first "
        "with GET `payouts/instant/`. The batch's rules apply: a verified payout method "
        "(409 `payout_method_unverified`), the minimum (400 `below_minimum`), approval and "
        "tax-form holds (the payout is then `awaiting_approval`), and one open payout at a "
        "time (409 `payout_open`, also when the weekly batch or another request got there "
        "first). More diamonds than available: 402 `insufficient_funds`.",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = InstantPayoutInput(data=request.data)
        data.is_valid(raise_exception=True)

        def handler() -> Response:
            payout = payout_instant_create(
                user=signed_in_user(request), diamonds=data.validated_data.get("diamonds")
            )
            context = {"method": payout_method_for_user(user=signed_in_user(request))}
            return Response(PayoutOutput(payout, context=context).data, status=201)

        return idempotent(request, handler)


class InstantQuoteOutput(serializers.Serializer[Any]):
    diamonds = serializers.IntegerField()
    diamonds_available = serializers.IntegerField()
    value = MoneyOutputField()
    fee = MoneyOutputField()
    amount = MoneyOutputField(help_text="What is sent: value minus fee.")
    fee_pct = serializers.DecimalField(max_digits=6, decimal_places=2)
    holds = serializers.ListField(
        child=serializers.CharField(), help_text="Why staff must approve it first (if any)."
    )


class InstantQuoteView(APIView):
    @extend_schema(
        parameters=[InstantQuery],
        responses={
            200: InstantQuoteOutput,
            **error_responses(
                {400: ["below_minimum"]},
                401,
                402,
                {403: ["not_a_creator"]},
                {409: ["payout_open", "payout_method_unverified"]},
            ),
        },
        summary="What cashing out now would send, its fee, and any hold (nothing is created)",
    )
    def get(self, request: Request) -> Response:
        data = InstantQuery(data=request.query_params.dict())
        data.is_valid(raise_exception=True)
        quote = payout_instant_quote(
            user=signed_in_user(request), diamonds=data.validated_data.get("diamonds")
        )
        return Response(InstantQuoteOutput(quote).data)


class PayoutMethodOutput(serializers.Serializer[Any]):
    rail = serializers.ChoiceField(choices=Rail.choices)
    verified = serializers.BooleanField(source="is_verified")
    verified_at = serializers.DateTimeField(allow_null=True)
    account_holder = serializers.CharField()
    iban_last4 = serializers.CharField()
    tax_form_status = serializers.CharField()
    onboarding_url = serializers.SerializerMethodField()

    def get_onboarding_url(self, method: PayoutMethod) -> str | None:
        url: str | None = self.context.get("onboarding_url")
        return url


class PayoutMethodInput(StrictInput):
    rail = serializers.ChoiceField(choices=Rail.choices)
    account_holder = serializers.CharField(required=False, allow_blank=True, max_length=140)
    iban = serializers.CharField(required=False, allow_blank=True, max_length=64)
    password = serializers.CharField(
        write_only=True,
        trim_whitespace=False,
        max_length=4096,
        help_text="The account's password: a change of where payouts go needs it every time.",
    )


def _method_data(method: PayoutMethod, onboarding_url: str | None = None) -> ReturnDict[str, Any]:
    return PayoutMethodOutput(method, context={"onboarding_url": onboarding_url}).data


class PayoutMethodView(APIView):
    @extend_schema(
        responses={200: PayoutMethodOutput, **error_responses(401, {403: ["not_a_creator"]}, 404)},
        summary="My payout method (the IBAN is shown by its last four characters only)",
    )
    def get(self, request: Request) -> Response:
        creator_required(user=signed_in_user(request))
        method = payout_method_for_user(user=signed_in_user(request))
        if method is None:
            raise NotFound("No payout method yet. Set one with PUT.")
        return Response(_method_data(method))

    @extend_schema(
        request=PayoutMethodInput,
        responses={
            200: PayoutMethodOutput,
            **error_responses(
                400,
                401,
                {403: ["not_a_creator", "password_incorrect"]},
                {429: ["account_locked"]},
                {502: ["payout_rail_error"]},
                {503: ["payout_rail_unavailable"]},
            ),
        },
        summary="Set my payout method (needs the password; a change clears verification)",
        description=(
            '`{"rail": "manual", "account_holder", "iban", "password"}` (verified by staff) or '
            '`{"rail": "stripe", "password"}`: the answer carries an `onboarding_url` for Stripe '
            "Connect; the method is verified once Stripe says the account can receive payouts.\n\n"
            "`password` is the account's password, required on every call: missing → 400 "
            "`validation_error` (`fields.password`); wrong → 403 `password_incorrect` (wrong "
            "passwords count towards the login lockout). A new destination is held: payouts to "
            "it wait `PAYOUT_DESTINATION_HOLD_HOURS` (72 by default; the payout's `held_until` "
            "says until when)."
        ),
    )
    def put(self, request: Request) -> Response:
        data = PayoutMethodInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = payout_method_set(
            user=signed_in_user(request),
            password=data.validated_data["password"],
            request=request,
            rail=data.validated_data["rail"],
            account_holder=data.validated_data.get("account_holder", ""),
            iban=data.validated_data.get("iban", ""),
            refresh_url=request.build_absolute_uri("/creator/payout-method/"),
            return_url=request.build_absolute_uri("/creator/payout-method/return/"),
        )
        return Response(_method_data(result.method, result.onboarding_url or None))


# --- The next payout, statements, tracing a gift ----------------------------------------------


class NextPayoutOutput(serializers.Serializer[Any]):
    diamonds_available = serializers.IntegerField()
    available_value = MoneyOutputField()
    minimum = MoneyOutputField()
    estimate = MoneyOutputField(allow_null=True)
    next_run = serializers.DateTimeField(allow_null=True)
    expected_at = serializers.DateTimeField(allow_null=True)
    blocked_because = serializers.CharField()
    next_step = serializers.CharField()
    warning = serializers.CharField()


class NextPayoutView(APIView):
    @extend_schema(
        responses={200: NextPayoutOutput, **error_responses(401, {403: ["not_a_creator"]})},
        summary="My next payout: estimate and date, or what blocks it",
        description="`blocked_because` is empty when nothing blocks the next payout; otherwise "
        'it says what does (e.g. "Add a payout method.", "Reach USD 10.00: ...") and '
        "`next_step` what to do.",
    )
    def get(self, request: Request) -> Response:
        creator_required(user=signed_in_user(request))
        estimate = next_payout_estimate(user=signed_in_user(request))
        return Response(NextPayoutOutput(estimate).data)


class StatementLineOutput(serializers.Serializer[Any]):
    line = serializers.IntegerField(source="position")
    kind = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    ledger_transaction_id = serializers.IntegerField(source="transaction_id")
    gift_event_id = serializers.IntegerField(allow_null=True)
    sender = serializers.CharField()
    gift = serializers.CharField()
    quantity = serializers.IntegerField(allow_null=True)
    coins = serializers.IntegerField(allow_null=True)
    diamonds_per_coin = serializers.CharField()
    entry_diamonds = serializers.IntegerField()
    diamonds = serializers.IntegerField()
    value = serializers.DecimalField(max_digits=20, decimal_places=4)
    memo = serializers.CharField()


class StatementGroupOutput(serializers.Serializer[Any]):
    day = serializers.DateField()
    # Fields named like Field attributes: DRF's metaclass moves declared fields aside.
    context = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.context
    context_id = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.label
    diamonds = serializers.IntegerField()
    lines = StatementLineOutput(many=True, source="rows")


class StatementOutput(serializers.Serializer[Any]):
    payout = PayoutOutput()
    diamonds = serializers.IntegerField()
    diamonds_per_coin = serializers.CharField()
    diamond_value = serializers.DecimalField(max_digits=20, decimal_places=8)
    gross_value = serializers.DecimalField(max_digits=20, decimal_places=4)
    fees = MoneyOutputField()
    rounding = MoneyOutputField()
    amount = MoneyOutputField()
    conversion_note = serializers.CharField()
    gift_diamonds = serializers.IntegerField()
    membership_diamonds = serializers.IntegerField()
    chargeback_diamonds = serializers.IntegerField()
    adjustment_diamonds = serializers.IntegerField()
    paid_again_by = serializers.ListField(child=serializers.IntegerField())
    groups = StatementGroupOutput(many=True)


class StatementView(APIView):
    @extend_schema(
        responses={200: StatementOutput, **error_responses(401, {403: ["not_a_creator"]}, 404)},
        summary="A payout's statement: every gift and adjustment it pays, by day and live/video",
        description="The same statement as the portal page (CSV and PDF at "
        "`/creator/payouts/{id}/statement.csv` and `.pdf`). Lines sum to the payout's diamonds.",
    )
    def get(self, request: Request, payout_id: int) -> Response:
        creator_required(user=signed_in_user(request))
        statement = payout_statement(
            payout=payout_for_creator(user=signed_in_user(request), payout_id=payout_id)
        )
        method = payout_method_for_user(user=signed_in_user(request))
        return Response(StatementOutput(statement, context={"method": method}).data)


class TraceOutput(serializers.Serializer[Any]):
    ledger_transaction_id = serializers.IntegerField()
    gift_event_id = serializers.IntegerField()
    sent_at = serializers.DateTimeField()
    sender = serializers.CharField()
    gift = serializers.CharField()
    quantity = serializers.IntegerField()
    coins_debited = serializers.IntegerField()
    diamonds = serializers.IntegerField()
    live_id = serializers.CharField()
    video_id = serializers.CharField()
    released_by_transaction_id = serializers.IntegerField(allow_null=True)
    released_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    paid_by_payout_id = serializers.IntegerField(allow_null=True)
    payouts = serializers.ListField(child=serializers.DictField())


def trace_data(trace: GiftTrace) -> dict[str, Any]:
    event = trace.gift_event
    return {
        "ledger_transaction_id": event.transaction_id,
        "gift_event_id": event.pk,
        "sent_at": event.created_at,
        "sender": event.sender.username,
        "gift": event.gift.name,
        "quantity": event.quantity,
        "coins_debited": -trace.sender_debit.amount if trace.sender_debit else event.coins,
        "diamonds": event.diamonds,
        "live_id": event.live_id,
        "video_id": event.video_id,
        "released_by_transaction_id": trace.release.pk if trace.release else None,
        "released_at": trace.release.created_at if trace.release else None,
        "status": trace.status,
        "paid_by_payout_id": trace.paid_by.pk if trace.paid_by else None,
        "payouts": [
            {"payout_id": line.payout_id, "status": line.payout.status, "diamonds": line.diamonds}
            for line in trace.lines
        ],
    }


class TraceView(APIView):
    @extend_schema(
        responses={200: TraceOutput, **error_responses(401, {403: ["not_a_creator"]}, 404)},
        summary="Follow a gift from the sender's debit to the payout that paid it",
        description="`transaction_id` is the gift's ledger transaction (the one that debited "
        "the sender's coins; statements show it). Only the creator who received it can trace it.",
    )
    def get(self, request: Request, transaction_id: int) -> Response:
        creator_required(user=signed_in_user(request))
        trace = gift_trace(user=signed_in_user(request), transaction_id=transaction_id)
        return Response(TraceOutput(trace_data(trace)).data)
