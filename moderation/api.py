"""Moderation API: a live's pinned messages (public), the creator's own moderation
(``creators/me/moderation/...``) and viewers' reports (``messages/{id}/report/``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictInput, error_responses
from creators.api import NotACreator
from creators.selectors import creator_find, creator_of
from gifts.services import CONTEXT_ID_RE, CreatorNotFound
from moderation import services
from moderation.models import BLOCKED_WORDS_MAX, CreatorModeration, ReportReason
from moderation.selectors import (
    message_fate,
    messages_held,
    muted_viewers,
    pinned_messages,
    policy_for,
)


class PinOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The gift event id.")
    username = serializers.CharField()
    message = serializers.CharField()
    coins = serializers.IntegerField()
    until = serializers.DateTimeField(help_text="When the pin ends (unless dismissed first).")
    tier = serializers.IntegerField(help_text="1 = the smallest tier of LIVE_PIN_TIERS.")
    colour = serializers.CharField(help_text="The tier's colour, #rrggbb.")


PinList = inline_serializer("PinnedMessages", {"results": PinOutput(many=True)})


class PinnedView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="A live's pinned (highlighted) messages",
        description=(
            "Gifts with a message on this live, pinned for a time that grows with their coins "
            "(LIVE_PIN_TIERS), biggest first. Hidden, held and dismissed messages are left out. "
            "Open live feeds get the same as `pinned` / `unpinned` events."
        ),
        responses={200: PinList, **error_responses({404: ["creator_not_found"]})},
    )
    def get(self, request, handle: str, live_id: str):
        creator = creator_find(handle=handle)
        if creator is None or not creator.is_active:
            raise CreatorNotFound()
        if not CONTEXT_ID_RE.match(live_id or ""):
            raise CreatorNotFound("There is no such live stream.")
        pins = pinned_messages(creator_id=creator.pk, live_id=live_id)
        return Response({"results": [pin.as_dict() for pin in pins]})


def _my_creator(request):
    creator = creator_of(user=request.user)
    if creator is None:
        raise NotACreator()
    return creator


class ModerationInput(StrictInput):
    blocked_words = serializers.ListField(
        child=serializers.CharField(max_length=40, allow_blank=True),
        max_length=BLOCKED_WORDS_MAX,
        required=False,
        help_text="Words (or phrases) whose messages are shown without text, on top of the "
        "platform's list. Replaces the whole list.",
    )
    hold_messages = serializers.BooleanField(
        required=False,
        help_text="Hold every new message for approval (until turned off).",
    )


class ModerationOutput(serializers.Serializer):
    blocked_words = serializers.ListField(child=serializers.CharField())
    hold_messages = serializers.BooleanField()
    muted = serializers.ListField(child=serializers.CharField(), help_text="Muted usernames.")


def _settings_data(creator) -> dict:
    row = CreatorModeration.objects.filter(creator=creator).first()
    return {
        "blocked_words": row.blocked_words if row else [],
        "hold_messages": bool(row and row.hold_messages),
        "muted": [m.user.username for m in muted_viewers(creator_id=creator.pk)],
    }


class MyModerationView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="My moderation settings",
        responses={200: ModerationOutput, **error_responses(401, {404: ["not_a_creator"]})},
    )
    def get(self, request):
        return Response(_settings_data(_my_creator(request)))

    @extend_schema(
        summary="Change my blocked words or message holding",
        description="Errors: `validation_error`, `not_a_creator` (404).",
        request=ModerationInput,
        responses={200: ModerationOutput, **error_responses(400, 401, {404: ["not_a_creator"]})},
    )
    def patch(self, request):
        creator = _my_creator(request)
        data = ModerationInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.moderation_update(creator=creator, actor=request.user, **data.validated_data)
        return Response(_settings_data(creator))


class MuteInput(StrictInput):
    username = serializers.CharField(max_length=150)


class MutedOutput(serializers.Serializer):
    username = serializers.CharField()
    muted_at = serializers.DateTimeField()


class MyMutedView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Viewers whose messages I hide",
        responses={
            200: inline_serializer("MutedList", {"results": MutedOutput(many=True)}),
            **error_responses(401, {404: ["not_a_creator"]}),
        },
    )
    def get(self, request):
        creator = _my_creator(request)
        rows = muted_viewers(creator_id=creator.pk).order_by("-created_at")
        return Response(
            {"results": [{"username": m.user.username, "muted_at": m.created_at} for m in rows]}
        )

    @extend_schema(
        summary="Mute a viewer",
        description=(
            "Their messages (past and future) are hidden everywhere; their gifts still arrive "
            "and count, without text. Idempotent. Errors: `viewer_not_found` (404)."
        ),
        request=MuteInput,
        responses={
            201: MutedOutput,
            **error_responses(400, 401, {404: ["not_a_creator", "viewer_not_found"]}),
        },
    )
    def post(self, request):
        creator = _my_creator(request)
        data = MuteInput(data=request.data)
        data.is_valid(raise_exception=True)
        muted = services.viewer_mute(
            creator=creator, actor=request.user, username=data.validated_data["username"]
        )
        return Response(
            {"username": muted.user.username, "muted_at": muted.created_at},
            status=status.HTTP_201_CREATED,
        )


class MyMutedDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Unmute a viewer",
        description="Errors: `viewer_not_found` (404, also when not muted).",
        responses={
            204: None,
            **error_responses(401, {404: ["not_a_creator", "viewer_not_found"]}),
        },
    )
    def delete(self, request, username: str):
        services.viewer_unmute(creator=_my_creator(request), actor=request.user, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HeldOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    message = serializers.CharField()
    coins = serializers.IntegerField()
    live_id = serializers.CharField()
    created_at = serializers.DateTimeField()


class MyHeldView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Messages waiting for my approval",
        parameters=[OpenApiParameter("live_id", OpenApiTypes.STR, required=False)],
        responses={
            200: inline_serializer("HeldMessages", {"results": HeldOutput(many=True)}),
            **error_responses(401, {404: ["not_a_creator"]}),
        },
    )
    def get(self, request):
        creator = _my_creator(request)
        live_id = request.query_params.get("live_id", "")[:64]
        events = messages_held(creator_id=creator.pk, live_id=live_id or None)
        return Response(
            {
                "results": [
                    {
                        "id": e.pk,
                        "username": e.sender.username,
                        "message": e.message,
                        "coins": e.coins,
                        "live_id": e.live_id,
                        "created_at": e.created_at,
                    }
                    for e in events
                ]
            }
        )


class DecisionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=["shown", "held", "hidden"], help_text="What viewers see of the message now."
    )
    dismissed = serializers.BooleanField(help_text="Taken off the pinned strip.")


_ACTIONS = {
    "approve": services.message_approve,
    "reject": services.message_reject,
    "dismiss": services.message_dismiss,
}


class MyMessageActionView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Approve, reject (hide) or dismiss (unpin) one of my messages",
        description=(
            "`approve` shows a held message; `reject` hides a message for good (feed, overlay, "
            "pinned strip); `dismiss` takes it off the pinned strip. Idempotent. A message "
            "that is not to you is 404 `message_not_found`."
        ),
        request=None,
        responses={
            200: DecisionOutput,
            **error_responses(401, {404: ["not_a_creator", "message_not_found"]}),
        },
    )
    def post(self, request, event_id: int, action: str):
        creator = _my_creator(request)
        decide = _ACTIONS.get(action)
        if decide is None:
            raise services.MessageNotFound("There is no such action.")
        decision = decide(creator=creator, actor=request.user, event_id=event_id)
        event = decision.gift_event
        fate = message_fate(
            event, policy=policy_for(creator_id=creator.pk, cached=False), decision=decision
        )
        return Response(
            {
                "id": event.pk,
                "status": fate,
                "dismissed": decision.dismissed_at is not None,
            }
        )


class ReportInput(StrictInput):
    reason = serializers.ChoiceField(choices=ReportReason.choices)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text="open, hidden or dismissed")


class MessageReportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Report a gift message",
        description=(
            "Any signed-in person can report a message they can see; reports form the support "
            "team's moderation queue in the admin. Once per person and message: a repeat "
            "answers 200 with the first report. Errors: `message_not_found` (404), "
            "`validation_error`."
        ),
        request=ReportInput,
        responses={
            201: ReportOutput,
            200: ReportOutput,
            **error_responses(400, 401, {404: ["message_not_found"]}),
        },
    )
    def post(self, request, event_id: int):
        data = ReportInput(data=request.data)
        data.is_valid(raise_exception=True)
        report, created = services.message_report(
            reporter=request.user, event_id=event_id, **data.validated_data
        )
        return Response(
            {"id": report.pk, "status": report.status},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
