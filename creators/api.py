from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictInput, error_responses, signed_in_user
from config.errors import NotFound
from creators.models import Creator
from creators.selectors import creator_earnings, creator_find, creator_of
from creators.services import creator_create


class NotACreator(NotFound):
    code = "not_a_creator"
    default_message = "You are not a creator yet: POST creators/ first."


class CreatorInput(StrictInput):
    handle = serializers.RegexField(
        r"^[a-zA-Z0-9][a-zA-Z0-9_-]{1,28}[a-zA-Z0-9]$",
        max_length=30,
        trim_whitespace=False,
        help_text="3 to 30 letters, digits, '-' or '_' (no '-' or '_' at the ends); stored in "
        "lower case. Some handles are reserved (409 `handle_taken`).",
    )
    display_name = serializers.CharField(max_length=80)
    bio = serializers.CharField(max_length=300, required=False, allow_blank=True)


class CreatorCreated(serializers.Serializer[Any]):
    handle = serializers.CharField()
    display_name = serializers.CharField()


class CreatorProfile(serializers.Serializer[Any]):
    handle = serializers.CharField()
    display_name = serializers.CharField()
    bio = serializers.CharField()
    can_receive_gifts = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    url = serializers.URLField()


def profile_data(request: Request, creator: Creator) -> dict[str, Any]:
    return {
        "handle": creator.handle,
        "display_name": creator.display_name,
        "bio": creator.bio,
        "can_receive_gifts": creator.can_receive_gifts,
        "created_at": creator.created_at,
        "url": request.build_absolute_uri(f"/creators/{creator.handle}/"),
    }


class CreatorCreateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=CreatorInput,
        responses={
            201: CreatorCreated,
            **error_responses(400, 401, {409: ["handle_taken", "already_creator"]}),
        },
        summary="Become a creator",
        description="Errors: `validation_error`, `handle_taken`, `already_creator`.",
    )
    def post(self, request: Request) -> Response:
        data = CreatorInput(data=request.data)
        data.is_valid(raise_exception=True)
        creator = creator_create(user=signed_in_user(request), **data.validated_data)
        return Response(
            {"handle": creator.handle, "display_name": creator.display_name},
            status=status.HTTP_201_CREATED,
        )


class CreatorDetailView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: CreatorProfile, **error_responses(404)}, summary="A creator's profile"
    )
    def get(self, request: Request, handle: str) -> Response:
        creator = creator_find(handle=handle)
        if creator is None or not creator.is_active:
            raise NotFound("There is no creator with that handle.")
        return Response(profile_data(request, creator))


EarningsOutput = inline_serializer(
    name="Earnings",
    fields={
        "diamonds_pending": serializers.IntegerField(),
        "diamonds_available": serializers.IntegerField(),
        "diamonds_in_payout": serializers.IntegerField(),
        "diamonds_paid": serializers.IntegerField(),
        "available_value": inline_serializer(
            name="MoneyValue",
            fields={"amount": serializers.CharField(), "currency": serializers.CharField()},
        ),
    },
)


class EarningsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: EarningsOutput, **error_responses(401, {404: ["not_a_creator"]})},
        summary="My earnings as a creator",
        description=(
            "Pending diamonds are on hold for EARNINGS_HOLD_DAYS after each gift; available "
            "diamonds go out in the next payout. `available_value` is in PAYOUT_CURRENCY."
        ),
    )
    def get(self, request: Request) -> Response:
        creator = creator_of(user=signed_in_user(request))
        if creator is None:
            raise NotACreator()
        earnings = creator_earnings(creator=creator)
        value = earnings.available_value
        return Response(
            {
                "diamonds_pending": earnings.diamonds_pending,
                "diamonds_available": earnings.diamonds_available,
                "diamonds_in_payout": earnings.diamonds_in_payout,
                "diamonds_paid": earnings.diamonds_paid,
                "available_value": {"amount": str(value.amount), "currency": str(value.currency)},
            }
        )
