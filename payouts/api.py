from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import error_responses
from config.errors import NotFound
from payouts.models import PayoutMethod, PayoutStatus, Rail
from payouts.selectors import payout_failure_words, payout_method_for_user, payouts_for_user
from payouts.services import creator_of, payout_method_set


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
class MoneyOutputField(serializers.Field):
    def to_representation(self, value):
        return {"amount": str(value.amount), "currency": str(value.currency)}


class PayoutOutput(serializers.Serializer):
    id = serializers.IntegerField()
    diamonds = serializers.IntegerField()
    amount = MoneyOutputField()
    status = serializers.ChoiceField(choices=PayoutStatus.choices)
    rail = serializers.ChoiceField(choices=Rail.choices)
    failure_reason = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)

    def get_failure_reason(self, payout) -> str:
        return payout_failure_words(payout)


class PayoutFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=PayoutStatus.choices, required=False)


class PayoutListView(ListAPIView):
    serializer_class = PayoutOutput

    def get_queryset(self):
        filters = PayoutFilter(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        creator_of(self.request.user)
        return payouts_for_user(user=self.request.user, status=filters.validated_data.get("status"))

    @extend_schema(
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=PayoutStatus.values)],
        responses={200: PayoutOutput(many=True), **error_responses(400, 401, 403)},
        summary="My payouts, newest first",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PayoutMethodOutput(serializers.Serializer):
    rail = serializers.ChoiceField(choices=Rail.choices)
    verified = serializers.BooleanField(source="is_verified")
    verified_at = serializers.DateTimeField(allow_null=True)
    account_holder = serializers.CharField()
    iban_last4 = serializers.CharField()
    tax_form_status = serializers.CharField()
    onboarding_url = serializers.SerializerMethodField()

    def get_onboarding_url(self, method) -> str | None:
        return self.context.get("onboarding_url")


class PayoutMethodInput(serializers.Serializer):
    rail = serializers.ChoiceField(choices=Rail.choices)
    account_holder = serializers.CharField(required=False, allow_blank=True, max_length=200)
    iban = serializers.CharField(required=False, allow_blank=True, max_length=64)


def _method_data(method: PayoutMethod, onboarding_url: str | None = None) -> dict:
    data = PayoutMethodOutput(method, context={"onboarding_url": onboarding_url}).data
    if method.rail == Rail.STRIPE:
        data.pop("account_holder")
        data.pop("iban_last4")
    return data


class PayoutMethodView(APIView):
    @extend_schema(
        responses={200: PayoutMethodOutput, **error_responses(401, 403, 404)},
        summary="My payout method (the IBAN is shown by its last four characters only)",
    )
    def get(self, request):
        creator_of(request.user)
        method = payout_method_for_user(user=request.user)
        if method is None:
            raise NotFound("No payout method yet. Set one with PUT.")
        return Response(_method_data(method))

    @extend_schema(
        request=PayoutMethodInput,
        responses={200: PayoutMethodOutput, **error_responses(400, 401, 403)},
        summary="Set my payout method (a change clears verification)",
        description=(
            '`{"rail": "manual", "account_holder", "iban"}` (verified by staff) or '
            '`{"rail": "stripe"}`: the answer carries an `onboarding_url` for Stripe Connect; '
            "the method is verified once Stripe says the account can receive payouts."
        ),
    )
    def put(self, request):
        data = PayoutMethodInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = payout_method_set(
            user=request.user,
            rail=data.validated_data["rail"],
            account_holder=data.validated_data.get("account_holder", ""),
            iban=data.validated_data.get("iban", ""),
            refresh_url=request.build_absolute_uri("/creator/payout-method/"),
            return_url=request.build_absolute_uri("/creator/payout-method/return/"),
        )
        return Response(_method_data(result.method, result.onboarding_url or None))
