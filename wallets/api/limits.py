"""The viewer's own spending limits."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import error_responses, signed_in_user
from wallets.api.serializers import SpendingLimitsInput, SpendingLimitsOutput
from wallets.services import spending_limits_effective, spending_limits_set
from wallets.services.limits import (
    UNSET,
    coins_bought_since,
    coins_gifted_since,
    day_start,
    month_start,
)

if TYPE_CHECKING:
    from accounts.models import User


def spending_limits_json(user: User) -> dict[str, Any]:
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
