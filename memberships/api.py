"""Memberships API: tiers (the creator's and a creator's public list), joining and gifting,
my memberships and cancelling (PRODUCT.md, second round)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    IDEMPOTENCY_HEADER,
    StrictInput,
    error_responses,
    idempotent,
    signed_in_user,
)
from config.errors import NotFound
from config.throttles import MoneyThrottle
from creators.api import NotACreator
from creators.selectors import creator_find, creator_of
from gifts.api import BadgeOutput
from gifts.badges import badges_for
from gifts.selectors import viewer_level
from gifts.services import CreatorNotFound
from memberships.models import Membership, MembershipStatus, Tier
from memberships.selectors import (
    fan_level,
    membership_live,
    memberships_of,
    renewal_preview,
    tiers_of,
)
from memberships.services import (
    NAME_MAX,
    PERKS_MAX,
    TierNotFound,
    membership_cancel,
    membership_gift,
    membership_join,
    tier_create,
    tier_update,
)

# --- Tiers ----------------------------------------------------------------------------------


class TierInput(StrictInput):
    name = serializers.CharField(max_length=NAME_MAX)
    coins_per_month = serializers.IntegerField(
        min_value=1, max_value=settings.MEMBERSHIP_TIER_MAX_COINS
    )
    perks = serializers.CharField(max_length=PERKS_MAX, required=False, allow_blank=True)


class TierOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    coins_per_month = serializers.IntegerField(help_text="What a new member pays a month.")
    perks = serializers.CharField()
    members = serializers.IntegerField(help_text="Members with the perks now.")
    price_effective_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When a price change reaches existing members (their first renewal from "
        "then on); null when the price never changed.",
    )


class MyTierOutput(TierOutput):
    monthly_coins = serializers.IntegerField(
        help_text="Coins a month from the members who renew (at the price each pays now)."
    )


class TierListOutput(serializers.Serializer):
    results = TierOutput(many=True)


class MyTierListOutput(serializers.Serializer):
    results = MyTierOutput(many=True)


def tier_data(tier: Tier, *, own: bool = False) -> dict:
    data = {
        "id": tier.pk,
        "name": tier.name,
        "coins_per_month": tier.coins_per_month,
        "perks": tier.perks,
        "members": getattr(tier, "members", 0) or 0,
        "price_effective_at": tier.price_effective_at,
    }
    if own:
        data["monthly_coins"] = getattr(tier, "monthly_coins", 0) or 0
        return MyTierOutput(data).data
    return TierOutput(data).data


def _my_creator(request):
    creator = creator_of(user=request.user)
    if creator is None:
        raise NotACreator()
    return creator


class MyTiersView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: MyTierListOutput, **error_responses(401, {404: ["not_a_creator"]})},
        summary="My membership tiers (as a creator)",
    )
    def get(self, request):
        creator = _my_creator(request)
        return Response(
            {"results": [tier_data(t, own=True) for t in tiers_of(creator_id=creator.pk)]}
        )

    @extend_schema(
        request=TierInput,
        responses={
            201: MyTierOutput,
            **error_responses(400, 401, {404: ["not_a_creator"]}, {409: ["tier_limit"]}),
        },
        summary="Add a membership tier (three at most)",
        description="Errors: `validation_error`, `tier_limit` (409), `not_a_creator` (404).",
    )
    def post(self, request):
        creator = _my_creator(request)
        data = TierInput(data=request.data)
        data.is_valid(raise_exception=True)
        tier = tier_create(creator=creator, **data.validated_data)
        tier = tiers_of(creator_id=creator.pk).get(pk=tier.pk)
        return Response(tier_data(tier, own=True), status=status.HTTP_201_CREATED)


class TierPatchInput(StrictInput):
    name = serializers.CharField(max_length=NAME_MAX, required=False)
    coins_per_month = serializers.IntegerField(
        min_value=1, max_value=settings.MEMBERSHIP_TIER_MAX_COINS, required=False
    )
    perks = serializers.CharField(max_length=PERKS_MAX, required=False, allow_blank=True)


class MyTierDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=TierPatchInput,
        responses={
            200: MyTierOutput,
            **error_responses(400, 401, {404: ["not_a_creator", "tier_not_found"]}),
        },
        summary="Edit a membership tier",
        description=(
            "A new price applies to new members at once and to existing members from their "
            "first renewal on or after `price_effective_at` (MEMBERSHIP_PRICE_NOTICE_DAYS "
            "from now); every member on the tier gets a notice."
        ),
    )
    def patch(self, request, tier_id: int):
        creator = _my_creator(request)
        tier = Tier.objects.filter(pk=tier_id, creator=creator).first()
        if tier is None:
            raise TierNotFound()
        data = TierPatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        tier_update(tier=tier, actor=request.user, **data.validated_data)
        tier = tiers_of(creator_id=creator.pk).get(pk=tier.pk)
        return Response(tier_data(tier, own=True))


def _public_creator(handle: str):
    creator = creator_find(handle=handle)
    if creator is None or not creator.is_active:
        raise CreatorNotFound()
    return creator


class CreatorTiersView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: TierListOutput, **error_responses({404: ["creator_not_found"]})},
        summary="A creator's membership tiers",
    )
    def get(self, request, handle: str):
        creator = _public_creator(handle)
        return Response({"results": [tier_data(t) for t in tiers_of(creator_id=creator.pk)]})


# --- Memberships ----------------------------------------------------------------------------


class RenewalOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    coins = serializers.IntegerField()
    tier = serializers.IntegerField()
    tier_name = serializers.CharField()
    price_changes = serializers.BooleanField(
        help_text="True when this renewal costs more or less than the member pays now "
        "(a tier's price change, or a switch of tiers)."
    )


class MembershipOutput(serializers.Serializer):
    id = serializers.IntegerField()
    creator = serializers.CharField(help_text="The creator's handle.")
    tier = serializers.IntegerField()
    tier_name = serializers.CharField()
    status = serializers.ChoiceField(choices=MembershipStatus.choices)
    current_period_end = serializers.DateTimeField(
        help_text="The paid period's end: the perks run to here (cancelled: then it ends)."
    )
    months = serializers.IntegerField(help_text="Months paid or gifted in all.")
    coins_per_month = serializers.IntegerField(help_text="The price this member pays now.")
    renews = serializers.BooleanField()
    next_tier = serializers.IntegerField(
        allow_null=True, help_text="A tier switch that takes effect at the next renewal."
    )
    grace_until = serializers.DateTimeField(
        allow_null=True, help_text="In grace: the renewal is retried until then, then it lapses."
    )
    renewal = RenewalOutput(allow_null=True, help_text="The next renewal (null: none).")


def membership_data(membership: Membership) -> dict:
    """The membership as JSON-ready data (idempotent() stores the answer as JSON)."""
    renewal = renewal_preview(membership)
    raw = {
        "id": membership.pk,
        "creator": membership.creator.handle,
        "tier": membership.tier_id,
        "tier_name": membership.tier.name,
        "status": membership.status,
        "current_period_end": membership.current_period_end,
        "months": membership.months,
        "coins_per_month": membership.coins_per_month,
        "renews": membership.renews,
        "next_tier": membership.next_tier_id,
        "grace_until": membership.grace_until
        if membership.status == MembershipStatus.GRACE
        else None,
        "renewal": None
        if renewal is None
        else {
            "at": renewal.at,
            "coins": renewal.coins,
            "tier": renewal.tier_id,
            "tier_name": renewal.tier_name,
            "price_changes": renewal.price_changes,
        },
    }
    return MembershipOutput(raw).data


class JoinInput(StrictInput):
    tier = serializers.IntegerField(min_value=1)
    gift_to = serializers.ListField(
        child=serializers.CharField(max_length=150),
        required=False,
        min_length=1,
        help_text="Usernames: buy each of them one month of this tier (gift memberships).",
    )


class GiftedMembershipsOutput(serializers.Serializer):
    results = MembershipOutput(many=True)


JoinOrGiftOutput = PolymorphicProxySerializer(
    component_name="MembershipOrGiftedMemberships",
    serializers=[MembershipOutput, GiftedMembershipsOutput],
    resource_type_field_name=None,
)


class CreatorMembershipsView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [MoneyThrottle]

    @extend_schema(
        request=JoinInput,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: JoinOrGiftOutput,
            200: MembershipOutput,
            **error_responses(
                {400: ["self_membership", "unknown_recipient"]},
                401,
                402,
                {403: ["age_restricted", "creator_cannot_receive", "spending_limit_exceeded"]},
                {404: ["creator_not_found", "tier_not_found"]},
                {409: ["already_member"]},
                423,
                429,
            ),
        },
        summary="Join a creator's tier, or gift memberships",
        description=(
            "`{tier}`: join; the first month is debited at once (201). Already a member: "
            "another tier is a switch at the next renewal, a cancelled or gifted membership "
            "that still runs is resumed (200, nothing debited); in the grace period the "
            "overdue month is paid now (201). `{tier, gift_to: [username, ...]}`: one month "
            "for each viewer, in one debit (201 `{results: [membership]}`); a viewer who is "
            "already a member gets the month added. Errors: `insufficient_funds` (402), "
            "`wallet_frozen` (423), `age_restricted`, `creator_cannot_receive`, "
            "`spending_limit_exceeded` (403: your own daily or monthly limit, which memberships "
            "count towards with gifts), "
            "`creator_not_found`, `tier_not_found` (404), `already_member`, "
            "`idempotency_conflict` (409), `self_membership`, `unknown_recipient`, "
            "`validation_error` (400)."
        ),
    )
    def post(self, request, handle: str):
        def handler():
            data = JoinInput(data=request.data)
            data.is_valid(raise_exception=True)
            values = data.validated_data
            client_key = request.headers["Idempotency-Key"].strip()
            if "gift_to" in values:
                given = membership_gift(
                    payer=request.user,
                    creator_handle=handle,
                    tier_id=values["tier"],
                    recipients=values["gift_to"],
                    client_key=client_key,
                )
                return Response(
                    {"results": [membership_data(m) for m in given]},
                    status=status.HTTP_201_CREATED,
                )
            result = membership_join(
                member=request.user,
                creator_handle=handle,
                tier_id=values["tier"],
                client_key=client_key,
            )
            return Response(
                membership_data(result.membership),
                status=status.HTTP_201_CREATED if result.charged else status.HTTP_200_OK,
            )

        return idempotent(request, handler)


class MyMembershipsView(ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = MembershipOutput

    def get_queryset(self):
        return memberships_of(user=signed_in_user(self.request))

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset()) or []
        return self.get_paginated_response([membership_data(m) for m in page])

    @extend_schema(
        responses={200: MembershipOutput(many=True), **error_responses(401)},
        summary="My memberships, newest first",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MembershipDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: MembershipOutput, **error_responses(401, {404: ["membership_not_found"]})},
        summary="One of my memberships",
    )
    def get(self, request, membership_id: int):
        membership = memberships_of(user=request.user).filter(pk=membership_id).first()
        if membership is None:
            from memberships.services import MembershipNotFound

            raise MembershipNotFound()
        return Response(membership_data(membership))

    @extend_schema(
        responses={
            200: MembershipOutput,
            **error_responses(401, {404: ["membership_not_found"]}, {409: ["membership_ended"]}),
        },
        summary="Cancel one of my memberships",
        description=(
            "No more renewals; the perks run to `current_period_end`. Cancelling again answers "
            "the same. Errors: `membership_not_found` (404), `membership_ended` (409)."
        ),
    )
    def delete(self, request, membership_id: int):
        membership = membership_cancel(member=request.user, membership_id=membership_id)
        return Response(membership_data(membership))


# --- Fans: levels and badges ----------------------------------------------------------------


class FanMembershipOutput(serializers.Serializer):
    tier = serializers.CharField(help_text="The tier's name.")
    months = serializers.IntegerField()


class FanOutput(serializers.Serializer):
    username = serializers.CharField()
    level = serializers.IntegerField(help_text="Supporter level 1-50 (lifetime coins gifted).")
    fan_level = serializers.IntegerField(help_text="Fan level 1-50 for this creator.")
    badges = BadgeOutput(many=True)
    membership = FanMembershipOutput(allow_null=True)


class FanNotFound(NotFound):
    code = "fan_not_found"
    default_message = "There is no viewer with that username."


class FanView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: FanOutput,
            **error_responses({404: ["creator_not_found", "fan_not_found"]}),
        },
        summary="A viewer's level, fan level and badges for a creator",
        description=(
            "`level`: 1-50 from lifetime coins gifted (level L needs 10 × (L − 1)³ coins); "
            "`fan_level`: the same curve over coins given to this creator (gifts and "
            "membership months) plus 20 points per day supported. Badges: `member` (tier and "
            "months), `level`, `top3` (this week's board)."
        ),
    )
    def get(self, request, handle: str, username: str):
        creator = _public_creator(handle)
        fan = get_user_model().objects.filter(username=username[:150], is_active=True).first()
        if fan is None:
            raise FanNotFound()
        live = membership_live(member_id=fan.pk, creator_id=creator.pk)
        return Response(
            {
                "username": fan.username,
                "level": viewer_level(user_id=fan.pk),
                "fan_level": fan_level(creator_id=creator.pk, user_id=fan.pk),
                "badges": badges_for(creator_id=creator.pk, user_id=fan.pk, username=fan.username),
                "membership": {"tier": live.tier.name, "months": live.months} if live else None,
            }
        )
