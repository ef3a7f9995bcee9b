"""``GET, POST creators/me/goals/`` and ``GET creators/{handle}/goals/`` (issue #19)."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictInput, error_responses, signed_in_user
from creators.api import NotACreator
from creators.selectors import creator_find, creator_of
from gifts.goals import DESCRIPTION_MAX, TARGET_MAX, TITLE_MAX, goal_create, goals_progress
from gifts.models import GoalStatus
from gifts.services import CreatorNotFound

LIST_MAX = 100


class GoalInput(StrictInput):
    title = serializers.CharField(max_length=TITLE_MAX)
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX, required=False, allow_blank=True, default=""
    )
    target_coins = serializers.IntegerField(min_value=1, max_value=TARGET_MAX)
    deadline = serializers.DateTimeField(
        help_text="When the goal closes (at least GOAL_DEADLINE_MIN_MINUTES, at most "
        "GOAL_DEADLINE_MAX_DAYS ahead)."
    )
    live_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:-]{1,64}$",
        required=False,
        allow_blank=True,
        default="",
        help_text="For one live stream; empty: a goal for the period, shown on every live.",
    )
    all_or_nothing = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Gifts are held until the deadline: met → the creator gets all of it; "
        "missed → every gifter gets their coins back.",
    )


class GoalOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    target_coins = serializers.IntegerField()
    raised_coins = serializers.IntegerField()
    deadline = serializers.DateTimeField()
    live_id = serializers.CharField()
    all_or_nothing = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=GoalStatus.choices,
        help_text="open until the deadline; then met (raised ≥ target) or missed.",
    )
    percent = serializers.IntegerField(help_text="raised/target, 0-100, for a progress bar")


class GoalListOutput(serializers.Serializer[Any]):
    results = GoalOutput(many=True)
    next = serializers.URLField(allow_null=True)


STATUS_PARAM = OpenApiParameter(
    "status", OpenApiTypes.STR, enum=list(GoalStatus.values), description="Only these goals."
)
LIVE_PARAM = OpenApiParameter(
    "live_id",
    OpenApiTypes.STR,
    description="Only the goals shown on this live: its own and the period goals.",
)


def _list(request: Request, creator_id: int) -> Response:
    wanted = request.query_params.get("status")
    if wanted is not None and wanted not in GoalStatus.values:
        raise serializers.ValidationError({"status": [f"One of: {', '.join(GoalStatus.values)}."]})
    live_id = request.query_params.get("live_id")
    goals = goals_progress(
        creator_id=creator_id,
        live_id=live_id.strip()[:64] if live_id else None,
        open_only=wanted == GoalStatus.OPEN,
        limit=LIST_MAX,
    )
    rows = [g.as_dict() for g in goals if wanted is None or g.status == wanted]
    return Response({"results": rows, "next": None})


class MyGoalsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[STATUS_PARAM, LIVE_PARAM],
        responses={200: GoalListOutput, **error_responses(400, 401, {404: ["not_a_creator"]})},
        summary="My goals as a creator",
        description=f"Newest deadline first, at most {LIST_MAX}. Errors: `not_a_creator`.",
    )
    def get(self, request: Request) -> Response:
        creator = creator_of(user=signed_in_user(request))
        if creator is None:
            raise NotACreator()
        return _list(request, creator.pk)

    @extend_schema(
        request=GoalInput,
        responses={
            201: GoalOutput,
            **error_responses(400, 401, {404: ["not_a_creator"]}, {409: ["too_many_goals"]}),
        },
        summary="Set a goal",
        description=(
            "A target in coins by a deadline, for one live (`live_id`) or a period. Gifts "
            "count toward it when sent with `goal`. Errors: `validation_error`, "
            "`not_a_creator`, `too_many_goals` (409, GOALS_OPEN_MAX open at once)."
        ),
    )
    def post(self, request: Request) -> Response:
        creator = creator_of(user=signed_in_user(request))
        if creator is None:
            raise NotACreator()
        data = GoalInput(data=request.data)
        data.is_valid(raise_exception=True)
        goal = goal_create(creator=creator, actor=signed_in_user(request), **data.validated_data)
        (progress,) = goals_progress(creator_id=creator.pk, goal_ids=[goal.pk])
        return Response(progress.as_dict(), status=status.HTTP_201_CREATED)


class CreatorGoalsView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[STATUS_PARAM, LIVE_PARAM],
        responses={200: GoalListOutput, **error_responses(400, {404: ["creator_not_found"]})},
        summary="A creator's goals and their progress",
        description=f"Public. Newest deadline first, at most {LIST_MAX}.",
    )
    def get(self, request: Request, handle: str) -> Response:
        creator = creator_find(handle=handle)
        if creator is None or not creator.is_active:
            raise CreatorNotFound()
        return _list(request, creator.pk)
