"""Memberships: tiers, joining, gifting, cancelling and the monthly renewal.

Money: every month paid is one ``membership`` ledger transaction booked like a gift (the
payer's wallet → coins spent; diamond issuance → the creator's pending diamonds, held like
gift earnings) plus one ``MembershipCharge`` row per membership month it paid. A gift of N
months is one transaction with N charge rows.

Exactly once per period: a month's ledger key names the membership and the period's start
(``membership-renewal:<id>:<start>``) and ``MembershipCharge`` is unique per (membership,
period start), so a second debit for one period is impossible whatever runs it. The renewal
run takes due memberships in chunks with ``FOR UPDATE SKIP LOCKED`` (two runs share the work,
never a row), and each chunk commits as a whole: a worker killed mid-chunk leaves those
memberships due, and the next run renews them.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import AgeRestricted, DomainError, InsufficientFunds, InvalidInput, NotFound
from creators.models import Creator
from creators.selectors import creator_find
from gifts.services import CreatorCannotReceive, CreatorNotFound, diamonds_for
from memberships.models import (
    RENEWING_STATUSES,
    TIERS_MAX,
    ChargeKind,
    EventKind,
    Membership,
    MembershipCharge,
    MembershipEvent,
    MembershipStatus,
    Tier,
)
from notifications.webhooks import webhook_event_emit
from wallets.models import Account, AccountKind, LedgerTransaction, TransactionKind
from wallets.services import (
    Posting,
    account_get,
    ledger_post,
    platform_account,
    wallet_check_can_spend,
    wallet_get,
)

log = logging.getLogger(__name__)

NAME_MAX = 60
PERKS_MAX = 500


class TierNotFound(NotFound):
    code = "tier_not_found"
    default_message = "This creator has no tier with that id."


class TierLimit(DomainError):
    code = "tier_limit"
    status = 409
    default_message = f"A creator offers {TIERS_MAX} tiers at most."


class AlreadyMember(DomainError):
    code = "already_member"
    status = 409
    default_message = "You are already a member on this tier."


class SelfMembership(DomainError):
    code = "self_membership"
    status = 400
    default_message = "You cannot join your own memberships."


class MembershipNotFound(NotFound):
    code = "membership_not_found"
    default_message = "There is no such membership."


class MembershipEnded(DomainError):
    code = "membership_ended"
    status = 409
    default_message = "This membership has already ended."


class UnknownRecipient(DomainError):
    code = "unknown_recipient"
    status = 400
    default_message = "A gift membership needs existing viewers as recipients."


# --- Periods --------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months (UTC), the day clamped to the month's last day:
    an anchor of Jan 31 gives Feb 28, Mar 31, Apr 30 (always counted from the anchor)."""
    moment = moment.astimezone(UTC)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def renewal_price(*, membership: Membership, tier: Tier, at: datetime) -> int:
    """What the renewal at ``at`` costs: a switched-to tier's price; otherwise the tier's
    price once its change is in effect, or the price the member pays now."""
    if membership.next_tier_id is not None and tier.pk == membership.next_tier_id:
        return tier.coins_per_month
    if tier.price_effective_at is None or tier.price_effective_at <= at:
        return tier.coins_per_month
    return membership.coins_per_month


# --- Tiers ----------------------------------------------------------------------------------


def _clean_tier_fields(*, name=None, coins_per_month=None, perks=None) -> dict:
    values: dict = {}
    if name is not None:
        name = " ".join(str(name).split())
        if not 1 <= len(name) <= NAME_MAX:
            raise InvalidInput(
                f"A tier name is 1 to {NAME_MAX} characters.",
                fields={"name": [f"1 to {NAME_MAX} characters."]},
            )
        values["name"] = name
    if coins_per_month is not None:
        top = settings.MEMBERSHIP_TIER_MAX_COINS
        if (
            isinstance(coins_per_month, bool)
            or not isinstance(coins_per_month, int)
            or not 1 <= coins_per_month <= top
        ):
            raise InvalidInput(
                f"The price is a whole number of coins from 1 to {top:,}.",
                fields={"coins_per_month": [f"A whole number from 1 to {top}."]},
            )
        values["coins_per_month"] = coins_per_month
    if perks is not None:
        perks = str(perks).strip()
        if len(perks) > PERKS_MAX:
            raise InvalidInput(
                f"Perks are {PERKS_MAX} characters at most.",
                fields={"perks": [f"Ensure this field has no more than {PERKS_MAX} characters."]},
            )
        values["perks"] = perks
    return values


@transaction.atomic
def tier_create(*, creator: Creator, name: str, coins_per_month: int, perks: str = "") -> Tier:
    """Add a tier (a creator has three at most: ``position`` 1..3 is unique and checked)."""
    values = _clean_tier_fields(name=name, coins_per_month=coins_per_month, perks=perks or "")
    taken = set(Tier.objects.filter(creator=creator).values_list("position", flat=True))
    free = [p for p in range(1, TIERS_MAX + 1) if p not in taken]
    if not free:
        raise TierLimit()
    try:
        with transaction.atomic():
            tier = Tier.objects.create(creator=creator, position=free[0], **values)
    except IntegrityError as exc:  # a concurrent create took the position
        raise TierLimit("Another tier was added at the same time; try again.") from exc
    MembershipEvent.objects.create(
        tier=tier, kind=EventKind.TIER_CHANGED, actor=creator.user, detail={"created": values}
    )
    return tier


@transaction.atomic
def tier_update(
    *,
    tier: Tier,
    actor,
    name: str | None = None,
    coins_per_month: int | None = None,
    perks: str | None = None,
) -> Tier:
    """Edit a tier. A new price applies to new members at once and to existing members from
    their first renewal ``MEMBERSHIP_PRICE_NOTICE_DAYS`` or more ahead; each live member gets
    a notice now."""
    values = _clean_tier_fields(name=name, coins_per_month=coins_per_month, perks=perks)
    tier = Tier.objects.select_for_update().get(pk=tier.pk)
    before = {"name": tier.name, "coins_per_month": tier.coins_per_month, "perks": tier.perks}
    old_price = tier.coins_per_month
    for field, value in values.items():
        setattr(tier, field, value)
    price_changed = tier.coins_per_month != old_price
    now = timezone.now()
    if price_changed:
        tier.price_effective_at = now + timedelta(days=settings.MEMBERSHIP_PRICE_NOTICE_DAYS)
    tier.save()
    MembershipEvent.objects.create(
        tier=tier,
        kind=EventKind.TIER_CHANGED,
        actor=actor,
        detail={"before": before, "after": values},
    )
    if price_changed:
        effective = tier.price_effective_at
        members = Membership.objects.filter(
            Q(tier=tier) | Q(next_tier=tier), status__in=RENEWING_STATUSES, renews=True
        )
        MembershipEvent.objects.bulk_create(
            [
                MembershipEvent(
                    membership_id=membership_id,
                    tier=tier,
                    kind=EventKind.PRICE_CHANGE,
                    actor=actor,
                    notify=True,
                    message=(
                        f"{tier.name} changes from {old_price:,} to {tier.coins_per_month:,} "
                        f"coins a month from your first renewal on or after "
                        f"{effective:%Y-%m-%d %H:%M} UTC."
                    ),
                    detail={
                        "old": old_price,
                        "new": tier.coins_per_month,
                        "effective_at": effective.isoformat() if effective else None,
                    },
                    created_at=now,
                )
                for membership_id in members.values_list("pk", flat=True).iterator()
            ],
            batch_size=2000,
        )
    return tier


# --- Money ----------------------------------------------------------------------------------


def _ledger_key(prefix: str, user_id: int, client_key: str) -> str:
    client_key = (client_key or "").strip()
    if not client_key:
        raise InvalidInput("A client key is required.", fields={"client_key": ["Required."]})
    if len(client_key) > 180:
        client_key = "sha256-" + hashlib.sha256(client_key.encode()).hexdigest()
    return f"{prefix}:{user_id}:{client_key}"


def _book(
    *, payer, creator: Creator, coins: int, diamonds: int, key: str, memo: str, reference: str
):
    """One membership transaction: coins out of the payer's wallet, diamonds into the
    creator's pending earnings (same hold as gifts). Raises InsufficientFunds."""
    wallet = wallet_get(user=payer)
    pending = creator.pending_account or account_get(
        kind=AccountKind.DIAMONDS_PENDING, user=creator.user
    )
    return ledger_post(
        kind=TransactionKind.MEMBERSHIP,
        idempotency_key=key,
        postings=[
            Posting(wallet, -coins),
            Posting(platform_account(AccountKind.COINS_SPENT), coins),
            Posting(platform_account(AccountKind.DIAMOND_ISSUANCE), -diamonds),
            Posting(pending, diamonds),
        ],
        actor=payer,
        memo=memo,
        reference=reference,
    )


def _charge_record(
    *,
    membership: Membership,
    tier: Tier,
    kind: str,
    payer,
    journal: LedgerTransaction,
    coins: int,
    period_start: datetime,
    period_end: datetime,
) -> MembershipCharge:
    return MembershipCharge.objects.create(
        membership=membership,
        tier=tier,
        kind=kind,
        payer=payer,
        transaction=journal,
        coins=coins,
        diamonds=diamonds_for(coins),
        period_start=period_start,
        period_end=period_end,
        created_at=journal.created_at,
    )


def _creator_for(handle: str) -> Creator:
    creator = creator_find(handle=handle)
    if creator is None or not creator.is_active:
        raise CreatorNotFound()
    if not creator.can_receive_gifts:
        raise CreatorCannotReceive("This creator cannot take members right now.")
    return creator


def _tier_of(creator: Creator, tier_id) -> Tier:
    if isinstance(tier_id, bool) or not isinstance(tier_id, int) or tier_id < 1:
        raise InvalidInput("tier is a tier id.", fields={"tier": ["A valid tier id is required."]})
    tier = Tier.objects.filter(pk=tier_id, creator=creator).first()
    if tier is None:
        raise TierNotFound()
    return tier


def _locked(*, member_id: int, creator_id: int) -> Membership | None:
    return (
        Membership.objects.select_for_update()
        .filter(member_id=member_id, creator_id=creator_id)
        .first()
    )


def _start(membership: Membership, *, tier: Tier, now: datetime, renews: bool) -> None:
    """(Re)start a membership that is not live: a fresh period from now."""
    membership.tier = tier
    membership.next_tier = None
    membership.status = MembershipStatus.ACTIVE
    membership.renews = renews
    membership.coins_per_month = tier.coins_per_month
    membership.anchor = now
    membership.period_count = 1
    membership.current_period_end = add_months(now, 1)
    membership.next_attempt_at = membership.current_period_end
    membership.grace_until = None
    membership.cancelled_at = None
    membership.months += 1
    if membership.pk is None:
        membership.started_at = now


def _locked_or_new(*, member, creator: Creator, tier: Tier, now: datetime):
    """The (member, creator) membership row, locked; a new unsaved one when there is none.

    A new row is inserted by the caller; a concurrent insert of the same pair makes that
    fail on the unique constraint, and the caller retries with the row then found here.
    """
    membership = _locked(member_id=member.pk, creator_id=creator.pk)
    if membership is not None:
        return membership
    return Membership(
        member=member,
        creator=creator,
        tier=tier,
        coins_per_month=tier.coins_per_month,
        anchor=now,
        current_period_end=add_months(now, 1),
        next_attempt_at=add_months(now, 1),
        months=0,
    )


# Membership events a creator's apps hear about (notifications.webhooks).
WEBHOOK_TYPES = {
    EventKind.JOINED: "membership.started",
    EventKind.RENEWED: "membership.renewed",
    EventKind.GRACE: "membership.grace",
    EventKind.LAPSED: "membership.lapsed",
    EventKind.CANCELLED: "membership.cancelled",
}


def _event(membership: Membership, kind: str, *, actor=None, message: str = "", **detail):
    event = MembershipEvent.objects.create(
        membership=membership,
        tier_id=membership.tier_id,
        kind=kind,
        actor=actor,
        message=message[:500],
        detail=detail,
        notify=kind in (EventKind.GIFTED, EventKind.GRACE, EventKind.LAPSED),
    )
    if kind in WEBHOOK_TYPES:
        webhook_event_emit(
            user_id=membership.creator.user_id,
            type=WEBHOOK_TYPES[EventKind(kind)],
            key=f"membership:{event.pk}",
            data={
                "membership": membership.pk,
                "member": membership.member.username,
                "tier": membership.tier_id,
                "status": str(membership.status),
                "current_period_end": membership.current_period_end,
                "months": membership.months,
            },
        )
    return event


@dataclass
class JoinResult:
    membership: Membership
    charged: bool  # a month was paid by this call (False: a switch, a resume, or a replay)
    replayed: bool = False


def _replay(key: str, *, payer) -> list[Membership] | None:
    journal = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if journal is None:
        return None
    charges = list(
        MembershipCharge.objects.filter(transaction=journal, payer=payer)
        .select_related("membership")
        .order_by("membership__member_id")
    )
    if not charges:
        raise InvalidInput("This client key was already used for something else.")
    return [c.membership for c in charges]


@transaction.atomic
def membership_join(*, member, creator_handle: str, tier_id: int, client_key: str) -> JoinResult:
    """Join a creator's tier: the first month is debited at once, exactly once per client key.

    Already a member: another tier is a switch at the next renewal; a cancelled (or gifted)
    membership that is still running is resumed without a charge; one in its grace period is
    renewed now. Refused: minors, a frozen wallet, not enough coins, the creator themself.
    """
    key = _ledger_key("membership", member.pk, client_key)
    replayed = _replay(key, payer=member)
    if replayed is not None:
        return JoinResult(replayed[0], charged=False, replayed=True)
    if not member.is_adult:
        raise AgeRestricted("You must be 18 or older to join memberships.")
    creator = _creator_for(creator_handle)
    if creator.user_id == member.pk:
        raise SelfMembership()
    tier = _tier_of(creator, tier_id)
    wallet_check_can_spend(wallet=wallet_get(user=member))
    now = timezone.now()
    for attempt in range(2):
        membership = _locked_or_new(member=member, creator=creator, tier=tier, now=now)
        if membership.pk is not None:
            break
        try:
            # Claims the pair; the month is paid below in the same transaction.
            with transaction.atomic():
                _start(membership, tier=tier, now=now, renews=True)
                membership.save(force_insert=True)
        except IntegrityError:
            if attempt:
                raise
            continue  # a concurrent join or gift created it: lock that row instead
        return JoinResult(
            _pay_first_month(membership, tier=tier, member=member, key=key, now=now), True
        )

    if membership.status == MembershipStatus.GRACE:
        # Paying by hand in grace: the overdue month now (on the tier asked for).
        membership.next_tier = None if tier.pk == membership.tier_id else tier
        _charge_renewal(membership, tier=tier, key=key, now=now, strict=True, actor=member)
        return JoinResult(membership, charged=True)
    if membership.is_live:
        changes = []
        if not membership.renews or membership.status == MembershipStatus.CANCELLED:
            membership.status = MembershipStatus.ACTIVE
            membership.renews = True
            membership.cancelled_at = None
            membership.next_attempt_at = membership.current_period_end
            changes.append(EventKind.RESUMED)
        wanted = None if tier.pk == membership.tier_id else tier
        if wanted != membership.next_tier:
            membership.next_tier = wanted
            changes.append(EventKind.SWITCH)
        if not changes:
            # A concurrent call with this very key may have made the membership: replay it.
            replayed = _replay(key, payer=member)
            if replayed is not None:
                return JoinResult(replayed[0], charged=False, replayed=True)
            raise AlreadyMember()
        membership.save()
        for kind in changes:
            _event(membership, kind, actor=member, next_tier=tier.pk)
        return JoinResult(membership, charged=False)
    # Ended (lapsed, or cancelled and run out): a new first month.
    _start(membership, tier=tier, now=now, renews=True)
    return JoinResult(
        _pay_first_month(membership, tier=tier, member=member, key=key, now=now), True
    )


def _pay_first_month(
    membership: Membership, *, tier: Tier, member, key: str, now: datetime
) -> Membership:
    coins = tier.coins_per_month
    result = _book(
        payer=member,
        creator=membership.creator,
        coins=coins,
        diamonds=diamonds_for(coins),
        key=key,
        memo=f"Membership: {tier.name} of @{membership.creator.handle}, 1 month",
        reference=f"membership:{membership.pk}" if membership.pk else "",
    )
    if not result.created:  # a concurrent call with this key won: never pay twice
        raise InvalidInput("This client key was already used.")
    membership.save()
    _charge_record(
        membership=membership,
        tier=tier,
        kind=ChargeKind.JOIN,
        payer=member,
        journal=result.transaction,
        coins=coins,
        period_start=membership.anchor,
        period_end=membership.current_period_end,
    )
    _event(membership, EventKind.JOINED, actor=member, coins=coins, tier_name=tier.name)
    return membership


def _charge_renewal(
    membership: Membership,
    *,
    tier: Tier,
    key: str | None,
    now: datetime,
    strict: bool,
    actor=None,
) -> bool:
    """Pay the next period of a locked membership; True when paid.

    The period runs on from the last one (a payment in grace covers the days since it was
    due); one found more than the grace period late (the renewal did not run) starts now.
    ``strict`` raises the refusal (a member paying by hand); otherwise False is returned and
    the caller's savepoint is rolled back.
    """
    late = now - membership.current_period_end > timedelta(days=settings.MEMBERSHIP_GRACE_DAYS)
    if late and membership.status == MembershipStatus.ACTIVE:
        anchor, count, start = now, 1, now
    else:
        anchor, count = membership.anchor, membership.period_count + 1
        start = membership.current_period_end
    end = add_months(anchor, count)
    price = renewal_price(membership=membership, tier=tier, at=start)
    member_id = membership.member_id
    wallet = Account.objects.filter(kind=AccountKind.WALLET, user_id=member_id).first()
    if wallet is None or wallet.is_frozen or wallet.balance < price:
        if strict:
            if wallet is not None:
                wallet_check_can_spend(wallet=wallet)
            raise InsufficientFunds()
        return False
    result = _book(
        payer=membership.member,
        creator=membership.creator,
        coins=price,
        diamonds=diamonds_for(price),
        key=key or f"membership-renewal:{membership.pk}:{start.isoformat()}",
        memo=f"Membership renewal: {tier.name} of @{membership.creator.handle} to {end:%Y-%m-%d}",
        reference=f"membership:{membership.pk}",
    )
    if not result.created:
        raise InvalidInput("This period was already paid.")
    membership.tier = tier
    membership.next_tier = None
    membership.coins_per_month = price
    membership.status = MembershipStatus.ACTIVE
    membership.grace_until = None
    membership.anchor, membership.period_count = anchor, count
    membership.current_period_end = end
    membership.next_attempt_at = end
    membership.months += 1
    membership.save()
    _charge_record(
        membership=membership,
        tier=tier,
        kind=ChargeKind.RENEWAL,
        payer=membership.member,
        journal=result.transaction,
        coins=price,
        period_start=start,
        period_end=end,
    )
    _event(membership, EventKind.RENEWED, actor=actor, coins=price, period_end=end.isoformat())
    return True


@transaction.atomic
def membership_gift(
    *, payer, creator_handle: str, tier_id: int, recipients: list, client_key: str
) -> list[Membership]:
    """Buy one month of ``tier`` for each named viewer, in one debit, exactly once per key.

    A recipient with a running membership gets the month added to it (their tier stays);
    anyone else gets a new membership that does not renew unless they choose to.
    """
    key = _ledger_key("membership-gift", payer.pk, client_key)
    replayed = _replay(key, payer=payer)
    if replayed is not None:
        return replayed
    if not payer.is_adult:
        raise AgeRestricted("You must be 18 or older to gift memberships.")
    creator = _creator_for(creator_handle)
    if creator.user_id == payer.pk:
        raise SelfMembership("You cannot gift memberships of your own channel.")
    names = _clean_recipients(recipients)
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names)}
    unknown = [n for n in names if n not in users or not users[n].is_active]
    if unknown:
        raise UnknownRecipient(
            f"No such viewer: {', '.join(unknown)}.",
            fields={"gift_to": [f"No such viewer: {name}" for name in unknown]},
        )
    for bad, why in ((payer.pk, "yourself (join instead)"), (creator.user_id, "the creator")):
        if any(u.pk == bad for u in users.values()):
            raise InvalidInput(
                f"A gift membership cannot go to {why}.", fields={"gift_to": [f"Not {why}."]}
            )
    tier = _tier_of(creator, tier_id)
    wallet_check_can_spend(wallet=wallet_get(user=payer))
    price = tier.coins_per_month
    coins = price * len(names)
    # The debit first: it claims the key, so a concurrent duplicate waits here and replays.
    result = _book(
        payer=payer,
        creator=creator,
        coins=coins,
        diamonds=diamonds_for(price) * len(names),
        key=key,
        memo=f"Gift memberships: {len(names)} x {tier.name} of @{creator.handle}",
        reference=f"creator:{creator.pk}",
    )
    if not result.created:
        return _replay(key, payer=payer) or []
    given = []
    # Rows locked in member-id order: two gifts to overlapping viewers never deadlock.
    for recipient in sorted(users.values(), key=lambda u: u.pk):
        given.append(
            _gift_one(
                recipient, creator=creator, tier=tier, payer=payer, journal=result.transaction
            )
        )
    by_member = {m.member_id: m for m in given}
    return [by_member[users[name].pk] for name in names]


def _clean_recipients(recipients) -> list[str]:
    top = settings.MEMBERSHIP_GIFT_MAX
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and r.strip() for r in recipients)
    ):
        raise InvalidInput(
            "gift_to is a list of usernames.", fields={"gift_to": ["A list of usernames."]}
        )
    names = [r.strip() for r in recipients]
    if len(names) > top:
        raise InvalidInput(
            f"At most {top} recipients per gift.",
            fields={"gift_to": [f"Ensure this list has no more than {top} elements."]},
        )
    if len({n.casefold() for n in names}) != len(names):
        raise InvalidInput(
            "Each recipient once, please.", fields={"gift_to": ["Duplicate usernames."]}
        )
    return names


def _gift_one(recipient, *, creator: Creator, tier: Tier, payer, journal) -> Membership:
    now = timezone.now()
    price = tier.coins_per_month
    for attempt in range(2):
        membership = _locked_or_new(member=recipient, creator=creator, tier=tier, now=now)
        if membership.pk is None:
            _start(membership, tier=tier, now=now, renews=False)
            try:
                with transaction.atomic():
                    membership.save(force_insert=True)
            except IntegrityError:
                if attempt:
                    raise
                continue
            start = membership.anchor
            break
        if membership.is_live:
            start = membership.current_period_end
            membership.period_count += 1
            membership.current_period_end = add_months(membership.anchor, membership.period_count)
            membership.months += 1
            if membership.status == MembershipStatus.GRACE:
                # The gifted month pays the overdue one: back to active.
                membership.status = MembershipStatus.ACTIVE
                membership.grace_until = None
            if membership.status == MembershipStatus.ACTIVE:
                membership.next_attempt_at = membership.current_period_end
        else:
            _start(membership, tier=tier, now=now, renews=False)
            start = membership.anchor
        membership.save()
        break
    _charge_record(
        membership=membership,
        tier=tier,
        kind=ChargeKind.GIFT,
        payer=payer,
        journal=journal,
        coins=price,
        period_start=start,
        period_end=membership.current_period_end,
    )
    _event(
        membership,
        EventKind.GIFTED,
        actor=payer,
        message=f"{payer.username} gifted you a month of {tier.name} (@{creator.handle}).",
        coins=price,
        gifted_by=payer.username,
    )
    return membership


@transaction.atomic
def membership_cancel(*, member, membership_id) -> Membership:
    """Cancel: no more renewals; the perks run to the end of the paid period. Idempotent.
    Another member's membership is 404."""
    membership = (
        Membership.objects.select_for_update()
        .filter(pk=membership_id, member=member)
        .select_related("creator", "tier")
        .first()
        if isinstance(membership_id, int)
        else None
    )
    if membership is None:
        raise MembershipNotFound()
    if membership.status == MembershipStatus.CANCELLED:
        return membership
    if membership.status == MembershipStatus.LAPSED:
        raise MembershipEnded()
    membership.status = MembershipStatus.CANCELLED
    membership.renews = False
    membership.next_tier = None
    membership.cancelled_at = timezone.now()
    membership.save()
    _event(
        membership,
        EventKind.CANCELLED,
        actor=member,
        runs_to=membership.current_period_end.isoformat(),
    )
    return membership


# --- Renewal --------------------------------------------------------------------------------


@dataclass
class RenewalRun:
    renewed: int = 0
    grace: int = 0
    lapsed: int = 0
    retry_later: int = 0
    errors: int = 0

    @property
    def summary(self) -> str:
        return (
            f"renew_memberships: {self.renewed} renewed, {self.grace} into grace, "
            f"{self.lapsed} lapsed, {self.retry_later} still in grace, {self.errors} errors"
        )


def memberships_renew(*, now: datetime | None = None, chunk_size: int = 200) -> RenewalRun:
    """Renew every membership due at ``now``; safe to run twice, beside itself, or after a
    crash (see the module docstring). Each chunk is one transaction."""
    now = now or timezone.now()
    run = RenewalRun()
    while True:
        with transaction.atomic():
            due = list(
                Membership.objects.select_for_update(skip_locked=True)
                .filter(status__in=RENEWING_STATUSES, next_attempt_at__lte=now)
                .order_by("next_attempt_at", "id")[:chunk_size]
            )
            if not due:
                return run
            _load_related(due)
            for membership in due:
                try:
                    with transaction.atomic():
                        outcome = _renew_one(membership, now=now)
                except SoftTimeLimitExceeded:
                    raise  # the task's time is up: this chunk rolls back, the next run redoes it
                except Exception:
                    # Never stall the run on one row: look at it again after the retry delay.
                    log.exception("renewal of membership %s failed", membership.pk)
                    Membership.objects.filter(pk=membership.pk).update(
                        next_attempt_at=now + timedelta(minutes=settings.MEMBERSHIP_RETRY_MINUTES)
                    )
                    run.errors += 1
                    continue
                setattr(run, outcome, getattr(run, outcome) + 1)


def _load_related(memberships: list[Membership]) -> None:
    tier_ids = {m.tier_id for m in memberships} | {m.next_tier_id for m in memberships}
    tiers = Tier.objects.in_bulk([t for t in tier_ids if t])
    creators = Creator.objects.select_related("user", "pending_account").in_bulk(
        {m.creator_id for m in memberships}
    )
    members = get_user_model().objects.in_bulk({m.member_id for m in memberships})
    for m in memberships:
        m.tier = tiers[m.tier_id]
        m.next_tier = tiers.get(m.next_tier_id) if m.next_tier_id else None
        m.creator = creators[m.creator_id]
        m.member = members[m.member_id]


def _renew_one(membership: Membership, *, now: datetime) -> str:
    if membership.status == MembershipStatus.ACTIVE and not membership.renews:
        return _lapse(membership, reason="not renewing")
    grace_until = membership.grace_until
    if membership.status == MembershipStatus.GRACE and grace_until and now >= grace_until:
        return _lapse(membership, reason="unpaid after the grace period")
    tier = membership.next_tier or membership.tier
    # A failed attempt rolls back to here (its journal row too): nothing half-paid remains.
    try:
        with transaction.atomic():
            paid = _charge_renewal(membership, tier=tier, key=None, now=now, strict=False)
    except InsufficientFunds:
        paid = False
    if paid:
        return "renewed"
    retry_at = now + timedelta(minutes=settings.MEMBERSHIP_RETRY_MINUTES)
    if membership.status == MembershipStatus.ACTIVE:
        grace_until = membership.current_period_end + timedelta(days=settings.MEMBERSHIP_GRACE_DAYS)
        if grace_until <= now:  # found late: give the grace period from now
            grace_until = now + timedelta(days=settings.MEMBERSHIP_GRACE_DAYS)
        Membership.objects.filter(pk=membership.pk).update(
            status=MembershipStatus.GRACE,
            grace_until=grace_until,
            next_attempt_at=min(retry_at, grace_until),
        )
        membership.status, membership.grace_until = MembershipStatus.GRACE, grace_until
        price = renewal_price(membership=membership, tier=tier, at=membership.current_period_end)
        _event(
            membership,
            EventKind.GRACE,
            message=(
                f"Your {tier.name} membership of @{membership.creator.handle} could not renew "
                f"({price:,} coins). Top up before {grace_until:%Y-%m-%d %H:%M} UTC to keep it."
            ),
            coins=price,
            grace_until=grace_until.isoformat(),
        )
        return "grace"
    Membership.objects.filter(pk=membership.pk).update(
        next_attempt_at=min(retry_at, membership.grace_until or retry_at)
    )
    return "retry_later"


def _lapse(membership: Membership, *, reason: str) -> str:
    Membership.objects.filter(pk=membership.pk).update(
        status=MembershipStatus.LAPSED, renews=False, next_tier=None
    )
    membership.status = MembershipStatus.LAPSED
    _event(
        membership,
        EventKind.LAPSED,
        message=f"Your membership of @{membership.creator.handle} has ended ({reason}).",
        reason=reason,
    )
    return "lapsed"


# --- Notices (the hook for an email outbox) -------------------------------------------------


def notices_pending(*, limit: int = 500) -> list[MembershipEvent]:
    """Notices not sent yet (grace, lapse, gift received, price change), oldest first. A
    mailer sends each and calls ``notices_mark_sent`` (same transaction as its own outbox)."""
    return list(
        MembershipEvent.objects.filter(notify=True, notified_at__isnull=True)
        .select_related("membership__member", "membership__creator", "tier")
        .order_by("id")[:limit]
    )


@transaction.atomic
def notices_mark_sent(*, event_ids: list[int]) -> int:
    return MembershipEvent.objects.filter(pk__in=event_ids, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
