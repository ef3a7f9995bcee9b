"""Everything that writes payouts. Diamonds move only through ``wallets.services.ledger_post``.

The state machine (docs/payouts.md)::

    awaiting_approval ─approve─▶ requested ─send─▶ processing ─rail ok─▶ paid
            │                        │                  │
            └──────cancel────────────┴──────────────────┴──rail refused / staff─▶ failed
                                                                          (or cancelled)

Every transition is a conditional UPDATE on the current status (so two workers, or a worker
and a staff member, cannot both move one payout) plus a ``PayoutEvent`` and, where diamonds
move, a ledger transaction keyed on the payout id in the same database transaction.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from functools import wraps

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import audit_record, refuse_own_account
from config.errors import DomainError, InsufficientFunds, InvalidInput, NotFound
from creators.models import Creator
from payouts import rails
from payouts.bulk import batch_chunks
from payouts.destination import destination_change_record
from payouts.models import (
    OPEN_STATUSES,
    Payout,
    PayoutBatch,
    PayoutEvent,
    PayoutMethod,
    PayoutStatus,
    Rail,
    TaxFormStatus,
)
from payouts.notices import payout_notify
from payouts.statements import statement_allocate
from wallets.models import Account, AccountKind, ReconciliationRun, TransactionKind
from wallets.services import (
    Posting,
    account_get,
    advisory_lock,
    discrepancy_record,
    ledger_post,
    platform_account,
)
from wallets.services.bulk import bulk_supported

log = logging.getLogger(__name__)


class PayoutStateError(DomainError):
    code = "payout_state_conflict"
    status = 409
    default_message = "The payout is not in a state that allows this."


class PasswordIncorrect(DomainError):
    code = "password_incorrect"
    status = 403
    default_message = "That password is not right. Changing where payouts go needs your password."


class NotACreator(DomainError):
    code = "not_a_creator"
    status = 403
    default_message = "Only creators have payouts. Become a creator first."


# --- Payout methods -------------------------------------------------------------------------


def iban_normalize(value: str) -> str:
    """Validate an IBAN (ISO 13616: country, check digits, mod-97 == 1) and normalise it."""
    iban = "".join((value or "").split()).upper()
    if not (15 <= len(iban) <= 34) or not iban.isalnum():
        raise InvalidInput("That is not a valid IBAN.", fields={"iban": ["Enter a valid IBAN."]})
    if not (iban[:2].isalpha() and iban[2:4].isdigit()):
        raise InvalidInput("That is not a valid IBAN.", fields={"iban": ["Enter a valid IBAN."]})
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        raise InvalidInput(
            "That IBAN's check digits are wrong: please check it for typos.",
            fields={"iban": ["The IBAN check digits do not match."]},
        )
    return iban


@dataclass
class MethodResult:
    method: PayoutMethod
    onboarding_url: str = ""


def creator_of(user) -> Creator:
    creator = Creator.objects.filter(user=user).first()
    if creator is None:
        raise NotACreator()
    return creator


def password_confirm(*, user, password: str, request=None) -> None:
    """The account's password again, for an action a stolen token or session must not do alone.

    Through ``authenticate()``: a wrong password counts towards the login lockout like a wrong
    login, and a locked account is refused whatever it sends.
    """
    if not password:
        raise InvalidInput(
            "Confirm this change with your password.",
            fields={"password": ["This field is required."]},
        )
    confirmed = authenticate(request, username=user.get_username(), password=password)
    if confirmed is None or confirmed.pk != user.pk:
        audit_record(actor=user, action="password_confirm_failed", obj=user, request=request)
        raise PasswordIncorrect()


def payout_method_set(
    *,
    user,
    password: str,
    rail: str,
    account_holder: str = "",
    iban: str = "",
    refresh_url: str = "",
    return_url: str = "",
    request=None,
) -> MethodResult:
    """Set the caller's payout method, confirmed with the password. A different destination
    clears verification and starts the destination hold (``PAYOUT_DESTINATION_HOLD_HOURS``).

    For Stripe, a Connect account is created once per creator (idempotency key from the
    creator id) and the answer carries a fresh onboarding link. The Stripe calls happen outside
    the database transaction; the row update is short.
    """
    creator = creator_of(user)
    password_confirm(user=user, password=password, request=request)
    if rail not in Rail.values:
        raise InvalidInput("Unknown payout rail.", fields={"rail": ["Choose manual or stripe."]})
    current = PayoutMethod.objects.filter(creator=creator).first()
    if rail == Rail.MANUAL:
        holder = " ".join((account_holder or "").split())
        if not holder:
            raise InvalidInput(
                "The account holder's name is required.",
                fields={"account_holder": ["This field is required."]},
            )
        if len(holder) > 140:
            raise InvalidInput(
                "The account holder's name is too long.",
                fields={"account_holder": ["Ensure this field has at most 140 characters."]},
            )
        normalized = iban_normalize(iban)
        changes = {"account_holder": holder, "iban": normalized}
        destination_same = bool(
            current
            and current.rail == Rail.MANUAL
            and current.iban == normalized
            and current.account_holder == holder
        )
        with transaction.atomic():
            method = _method_save(
                creator, current, rail, changes, keep_verified=destination_same, request=request
            )
        return MethodResult(method)

    account_id = current.stripe_account_id if current else ""
    if not account_id:
        account_id = rails.connect_account_create(email=user.email, creator_id=creator.pk).id
    url = rails.connect_onboarding_url(
        account_id=account_id, refresh_url=refresh_url, return_url=return_url
    )
    destination_same = bool(current and current.rail == Rail.STRIPE)
    with transaction.atomic():
        method = _method_save(
            creator,
            current,
            rail,
            {"stripe_account_id": account_id},
            keep_verified=False,
            destination_same=destination_same,
            request=request,
        )
    if destination_same and current and current.is_verified:
        # Re-opening onboarding for the same verified account: ask Stripe rather than guess.
        method = payout_method_refresh(method=method)
    return MethodResult(method, url)


def _method_save(
    creator: Creator,
    current: PayoutMethod | None,
    rail: str,
    changes: dict,
    *,
    keep_verified: bool,
    destination_same: bool | None = None,
    request=None,
) -> PayoutMethod:
    now = timezone.now()
    method = PayoutMethod.objects.select_for_update().filter(creator=creator).first()
    if method is None:
        method = PayoutMethod(creator=creator)
    before = _method_state(method) if method.pk else {}
    previous = copy.copy(method) if method.pk else None
    method.rail = rail
    for name, value in changes.items():
        setattr(method, name, value)
    if not keep_verified:
        method.is_verified = False
        method.verified_at = None
        method.verified_by = None
        method.verification_requested_by = None
        method.verification_requested_at = None
    if not (keep_verified if destination_same is None else destination_same):
        # The hold runs from the last change: a payout to it waits until then + the hold.
        method.destination_changed_at = now
    method.updated_at = now
    method.save()
    if (
        previous is not None
        and method.destination_changed_at == now
        and (previous.iban or previous.stripe_account_id)
    ):
        # A destination that already existed was replaced: tell the owner, with an undo link.
        destination_change_record(before=previous, after=method)
    audit_record(
        actor=creator.user,
        action="payout_method_set",
        obj=method,
        before=before,
        after=_method_state(method),
        request=request,
    )
    return method


def _method_state(method: PayoutMethod) -> dict:
    """What the audit log keeps of a method: never the whole IBAN."""
    return {
        "rail": method.rail,
        "iban_last4": method.iban_last4,
        "stripe_account_id": method.stripe_account_id,
        "verified": method.is_verified,
        "destination_changed_at": method.destination_changed_at,
    }


class SecondApproverRequired(DomainError):
    code = "second_approver_required"
    status = 403
    default_message = "A different finance member must approve this."


def payout_method_verify(*, method: PayoutMethod, actor, request=None) -> PayoutMethod:
    """Staff verify a payout method. Stripe: ask Stripe (it decides). Manual (bank details):
    four-eyes, one finance member proposes and a different one approves; the first call records
    the proposal, a call by someone else verifies. The proposer approving is refused (and
    audited); so is anyone verifying their own method. A change of destination in between
    clears the proposal (``_method_save``): an approval never covers details it did not see.
    """
    refuse_own_account(
        actor=actor,
        owner=method.creator.user,
        action="payout_method_verify",
        obj=method,
        request=request,
    )
    if method.rail == Rail.STRIPE:
        before = method.is_verified
        method = payout_method_refresh(method=method, actor=actor)
        audit_record(
            actor=actor,
            action="payout_method_verify",
            obj=method,
            before={"verified": before},
            after={"verified": method.is_verified, "asked": "stripe"},
            request=request,
        )
        return method
    if actor is None:
        raise SecondApproverRequired(
            "Bank details are verified by two finance members: name each with --by USERNAME."
        )
    if not actor.has_perm("payouts.change_payoutmethod"):
        raise PermissionDenied("This needs the finance role.")
    current = PayoutMethod.objects.get(pk=method.pk)
    if not current.is_verified and current.verification_requested_by_id == actor.pk:
        audit_record(
            actor=actor,
            action="four_eyes_refused",
            obj=current,
            after={"refused": "payout_method_verify"},
            reason="the proposer of a verification cannot approve it",
            request=request,
        )
        raise SecondApproverRequired(
            "You proposed verifying these bank details: a different finance member must approve it."
        )
    with transaction.atomic():
        locked = PayoutMethod.objects.select_for_update().get(pk=method.pk)
        if locked.is_verified or locked.rail != Rail.MANUAL:
            return locked
        now = timezone.now()
        if locked.verification_requested_by_id is None:
            PayoutMethod.objects.filter(pk=locked.pk).update(
                verification_requested_by=actor, verification_requested_at=now
            )
            action = "payout_method_verify_request"
        elif locked.verification_requested_by_id == actor.pk:
            raise SecondApproverRequired()  # proposed concurrently; the CHECK is the backstop
        else:
            PayoutMethod.objects.filter(pk=locked.pk).update(
                is_verified=True, verified_at=now, verified_by=actor
            )
            action = "payout_method_verify"
        locked.refresh_from_db()
        audit_record(
            actor=actor,
            action=action,
            obj=locked,
            before={"verified": False},
            after={
                "verified": locked.is_verified,
                "iban_last4": locked.iban_last4,
                "requested_by": locked.verification_requested_by_id,
            },
            request=request,
        )
    return locked


def payout_method_refresh(*, method: PayoutMethod, actor=None) -> PayoutMethod:
    """Ask Stripe whether the connected account can receive payouts; verified follows it."""
    if method.rail != Rail.STRIPE or not method.stripe_account_id:
        return method
    account = rails.connect_account_retrieve(method.stripe_account_id)
    with transaction.atomic():
        if account.payouts_enabled:
            PayoutMethod.objects.filter(
                pk=method.pk, stripe_account_id=account.id, is_verified=False
            ).update(is_verified=True, verified_at=timezone.now(), verified_by=actor)
        else:
            PayoutMethod.objects.filter(pk=method.pk, stripe_account_id=account.id).update(
                is_verified=False, verified_at=None, verified_by=None
            )
    method.refresh_from_db()
    return method


def payout_method_record_tax_form(
    *, method: PayoutMethod, status: str, actor, request=None
) -> PayoutMethod:
    if status not in TaxFormStatus.values:
        raise InvalidInput("Unknown tax form status.")
    refuse_own_account(
        actor=actor,
        owner=method.creator.user,
        action="payout_method_tax_form",
        obj=method,
        request=request,
    )
    PayoutMethod.objects.filter(pk=method.pk).update(
        tax_form_status=status,
        tax_form_received_at=None if status == TaxFormStatus.MISSING else timezone.now(),
        updated_at=timezone.now(),
    )
    method.refresh_from_db()
    return method


# --- Money conversions ----------------------------------------------------------------------


def minimum_payout_diamonds() -> int:
    """The fewest diamonds worth at least ``PAYOUT_MINIMUM`` (integer math, no floats)."""
    return max(1, math.ceil(settings.PAYOUT_MINIMUM / settings.DIAMOND_VALUE))


def diamonds_value(diamonds: int) -> Money:
    """What ``diamonds`` are worth, rounded down to the cent: we never pay out a fraction."""
    amount = (Decimal(diamonds) * settings.DIAMOND_VALUE).quantize(
        Decimal("0.01"), rounding=ROUND_DOWN
    )
    return Money(amount, settings.PAYOUT_CURRENCY)


# --- Transitions and their ledger moves ------------------------------------------------------


def _transition(
    payout: Payout, *, to: str, allowed_from: list[str], actor=None, note: str = "", **fields
) -> Payout:
    """Move a payout with one conditional UPDATE; raise if someone else moved it first."""
    now = timezone.now()
    moved = Payout.objects.filter(pk=payout.pk, status__in=allowed_from).update(
        status=to, updated_at=now, **fields
    )
    if not moved:
        payout.refresh_from_db()
        raise PayoutStateError(
            f"Payout #{payout.pk} is {payout.get_status_display().lower()}; "
            f"it cannot become {PayoutStatus(to).label.lower()}."
        )
    previous = payout.status
    payout.refresh_from_db()
    PayoutEvent.objects.create(
        payout=payout, from_status=previous, to_status=to, actor=actor, note=note[:500]
    )
    payout_notify(payout=payout)
    return payout


def _accounts(payout: Payout) -> tuple[Account, Account]:
    user = payout.creator.user
    return (
        account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=user),
        account_get(kind=AccountKind.DIAMONDS_IN_PAYOUT, user=user),
    )


def _record_paid(payout: Payout, *, actor=None, reference: str = "", note: str = "") -> Payout:
    payout = _transition(
        payout,
        to=PayoutStatus.PAID,
        allowed_from=[PayoutStatus.PROCESSING, PayoutStatus.REQUESTED],
        actor=actor,
        note=note,
        paid_at=timezone.now(),
        rail_reference=reference[:255],
    )
    _available, in_payout = _accounts(payout)
    ledger_post(
        kind=TransactionKind.PAYOUT_PAID,
        idempotency_key=f"payout-paid:{payout.pk}",
        postings=[
            Posting(in_payout, -payout.diamonds),
            Posting(platform_account(AccountKind.DIAMONDS_PAID_OUT), payout.diamonds),
        ],
        actor=actor,
        memo=f"Payout #{payout.pk} paid" + (f" ({reference})" if reference else ""),
        reference=f"payout:{payout.pk}",
    )
    return payout


def _return_diamonds(
    payout: Payout, *, to: str, allowed_from: list[str], actor, code: str, reason: str
) -> Payout:
    now = timezone.now()
    payout = _transition(
        payout,
        to=to,
        allowed_from=allowed_from,
        actor=actor,
        note=reason,
        failed_at=now,
        failure_code=code[:64],
        failure_reason=reason[:500],
    )
    available, in_payout = _accounts(payout)
    ledger_post(
        kind=TransactionKind.PAYOUT_FAILED,
        idempotency_key=f"payout-failed:{payout.pk}",
        postings=[Posting(in_payout, -payout.diamonds), Posting(available, payout.diamonds)],
        actor=actor,
        memo=f"Payout #{payout.pk} {to}: {reason}"[:500],
        reference=f"payout:{payout.pk}",
    )
    return payout


def _enqueue_send(payout_ids: list[int]) -> None:
    """Queue the sends once the current transaction commits: one task for a single payout,
    one task per ``PAYOUT_SEND_TASK_SIZE`` payouts for a batch's chunk (each payout still goes
    to the rail with its own idempotency key)."""
    if not payout_ids:
        return
    ids = sorted(payout_ids)

    def send() -> None:
        from payouts.tasks import payout_send_many_task, payout_send_task

        if len(ids) == 1:
            payout_send_task.delay(ids[0])
            return
        size = max(1, settings.PAYOUT_SEND_TASK_SIZE)
        for start in range(0, len(ids), size):
            payout_send_many_task.delay(ids[start : start + size])

    transaction.on_commit(send)


# --- The batch ------------------------------------------------------------------------------


def payout_candidates() -> list[tuple[int, int, int]]:
    """(creator id, user id, diamonds available) of every creator due a payout, in one query.

    A join against the ledger's cold ``diamonds_available`` rows (their balance column is the
    live balance): verified method, at least the minimum, and no payout already open.
    """
    open_placeholders = ", ".join(["%s"] * len(OPEN_STATUSES))
    sql = f"""
        SELECT c.id, c.user_id, a.balance
        FROM {Creator._meta.db_table} c
        JOIN {PayoutMethod._meta.db_table} m ON m.creator_id = c.id AND m.is_verified
        JOIN {Account._meta.db_table} a ON a.user_id = c.user_id AND a.kind = %s
        WHERE c.is_active AND a.balance >= %s
          AND NOT EXISTS (
              SELECT 1 FROM {Payout._meta.db_table} p
              WHERE p.creator_id = c.id AND p.status IN ({open_placeholders})
          )
        ORDER BY c.id
    """
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                AccountKind.DIAMONDS_AVAILABLE.value,
                minimum_payout_diamonds(),
                *[str(s) for s in OPEN_STATUSES],
            ],
        )
        return [(int(c), int(u), int(b)) for c, u, b in cursor.fetchall()]


def _paid_this_year(creator_ids: list[int]) -> dict[int, Decimal]:
    start = timezone.now().replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = (
        Payout.objects.filter(
            creator_id__in=creator_ids,
            created_at__gte=start,
            status__in=[PayoutStatus.PAID, *OPEN_STATUSES],
        )
        .values("creator_id")
        .annotate(total=Sum("amount"))
    )
    return {row["creator_id"]: row["total"] or Decimal(0) for row in rows}


@dataclass
class BatchResult:
    batch: PayoutBatch | None
    created: list[int] = field(default_factory=list)
    awaiting_approval: list[int] = field(default_factory=list)
    skipped: int = 0
    resent: int = 0
    fallbacks: int = 0  # set-based chunks that went one by one (a conflict in the chunk)

    @property
    def summary(self) -> str:
        if self.batch is None:
            return "run_payouts: another batch is running; nothing done"
        return (
            f"run_payouts: batch #{self.batch.pk}: {len(self.created)} payouts created "
            f"({self.batch.diamonds} diamonds), {len(self.awaiting_approval)} awaiting approval, "
            f"{self.resent} stuck payouts resent, {self.skipped} skipped"
        )


def payout_holds(
    *,
    method: PayoutMethod,
    amount: Money,
    paid_this_year: Decimal,
    approval_above: Money | None = None,
    tax_threshold: Decimal | None = None,
) -> list[str]:
    """Why a new payout must wait for staff (empty: it may go at once). The batch and
    "cash out now" (payouts.instant) both ask this."""
    if approval_above is None:
        approval_above = Money(settings.PAYOUT_APPROVAL_ABOVE, settings.PAYOUT_CURRENCY)
    if tax_threshold is None:
        tax_threshold = settings.PAYOUT_TAX_FORM_THRESHOLD
    holds = []
    if amount > approval_above:
        holds.append(f"above the approval threshold of {approval_above}")
    if (
        method.tax_form_status == TaxFormStatus.MISSING
        and paid_this_year + amount.amount > tax_threshold
    ):
        holds.append(f"tax form needed (over {tax_threshold} {amount.currency} this year)")
    return holds


def payout_batch_run(*, actor=None, set_based: bool | None = None) -> BatchResult:
    """Create one payout per due creator, then send every payout that is due to its rail.

    Deliberately not one transaction: each creator's payout row and its ledger move
    (available → in payout) commit together on their own, so a crash part-way keeps what was
    done and a rerun continues (the open-payout exclusion and the unique constraint make a
    creator's second payout impossible). Payouts left in requested / processing by a crash are
    sent again with their original idempotency key.
    """
    with advisory_lock("applause:payouts:batch") as acquired:
        if not acquired:
            return BatchResult(batch=None)
        if set_based is None:
            set_based = bulk_supported()
        return _batch_run(actor=actor, set_based=set_based)


def _batch_run(*, actor, set_based: bool) -> BatchResult:
    batch = PayoutBatch.objects.create(actor=actor)
    result = BatchResult(batch=batch)
    actor_id = actor.pk if actor is not None else None
    minimum = minimum_payout_diamonds()

    def on_chunk(payout_ids: list[int]) -> None:
        with transaction.atomic():
            _enqueue_send(payout_ids)

    if set_based:
        created, awaiting, total_diamonds, result.fallbacks = batch_chunks(
            batch=batch, actor_id=actor_id, minimum=minimum, on_chunk=on_chunk
        )
        result.created, result.awaiting_approval = created, awaiting
    else:
        total_diamonds = 0
        ids = [creator_id for creator_id, _user, _balance in payout_candidates()]
        size = settings.PAYOUT_BATCH_CHUNK
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            rows = create_payouts_one_by_one(batch=batch, creator_ids=chunk, actor_id=actor_id)
            result.skipped += len(chunk) - len(rows)
            for payout_id, diamonds, status in rows:
                result.created.append(payout_id)
                total_diamonds += diamonds
                if status == PayoutStatus.AWAITING_APPROVAL:
                    result.awaiting_approval.append(payout_id)
            on_chunk([pid for pid, _d, status in rows if status == PayoutStatus.REQUESTED])

    # Left by an earlier run (a crash, a lost worker): sent again with their original keys.
    created_now = set(result.created)
    stuck = [
        pk
        for pk in Payout.objects.filter(
            Q(status=PayoutStatus.REQUESTED) | Q(status=PayoutStatus.PROCESSING, rail=Rail.STRIPE)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .iterator(chunk_size=10000)
        if pk not in created_now
    ]
    result.resent = len(stuck)
    PayoutBatch.objects.filter(pk=batch.pk).update(
        finished_at=timezone.now(),
        payouts_created=len(result.created),
        diamonds=total_diamonds,
        payouts_resent=result.resent,
    )
    batch.refresh_from_db()
    on_chunk(stuck)
    return result


def create_payouts_one_by_one(
    *, batch: PayoutBatch, creator_ids: list[int], actor_id: int | None
) -> list[tuple[int, int, str]]:
    """The per-creator path (SQLite, and a set-based chunk's fallback): one transaction per
    creator through ``ledger_post`` and ``statement_allocate``. Returns ``(payout id, diamonds,
    status)`` of each payout created; a creator no longer due is skipped."""
    minimum = minimum_payout_diamonds()
    methods = {m.creator_id: m for m in PayoutMethod.objects.filter(creator_id__in=creator_ids)}
    yearly = _paid_this_year(creator_ids)
    creators = Creator.objects.select_related("user").in_bulk(creator_ids)
    approval_above = Money(settings.PAYOUT_APPROVAL_ABOVE, settings.PAYOUT_CURRENCY)
    tax_threshold = settings.PAYOUT_TAX_FORM_THRESHOLD
    rows: list[tuple[int, int, str]] = []
    for creator_id in creator_ids:
        method = methods.get(creator_id)
        creator = creators.get(creator_id)
        if method is None or not method.is_verified or creator is None or not creator.is_active:
            continue
        diamonds = account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=creator.user).balance
        if diamonds < minimum:
            continue
        amount = diamonds_value(diamonds)
        holds = payout_holds(
            method=method,
            amount=amount,
            paid_this_year=yearly.get(creator_id, Decimal(0)),
            approval_above=approval_above,
            tax_threshold=tax_threshold,
        )
        status = PayoutStatus.AWAITING_APPROVAL if holds else PayoutStatus.REQUESTED
        destination = method.stripe_account_id if method.rail == Rail.STRIPE else method.iban
        try:
            with transaction.atomic():
                payout = Payout.objects.create(
                    creator=creator,
                    batch=batch,
                    diamonds=diamonds,
                    amount=amount,
                    status=status,
                    rail=method.rail,
                    destination=destination,
                    hold_reason="; ".join(holds)[:200],
                    diamond_value=settings.DIAMOND_VALUE,
                    fee=Money(0, settings.PAYOUT_CURRENCY),
                )
                PayoutEvent.objects.create(
                    payout=payout, to_status=status, actor_id=actor_id, note=payout.hold_reason
                )
                available, in_payout = _accounts(payout)
                ledger_post(
                    kind=TransactionKind.PAYOUT_CREATED,
                    idempotency_key=f"payout-created:{payout.pk}",
                    postings=[Posting(available, -diamonds), Posting(in_payout, diamonds)],
                    actor=batch.actor,
                    memo=f"Payout #{payout.pk} ({amount})",
                    reference=f"payout:{payout.pk}",
                )
                # Which gifts this payout pays (its statement), in the same transaction.
                statement_allocate(payout=payout)
                payout_notify(payout=payout)
        except (IntegrityError, InsufficientFunds) as exc:
            # A concurrent run opened a payout first, or the balance moved since the read.
            log.warning("payout for creator %s skipped: %s", creator_id, exc)
            continue
        rows.append((payout.pk, diamonds, status))
    return rows


# --- Sending --------------------------------------------------------------------------------


def payout_send(*, payout_id: int) -> Payout:
    """Send one payout to its rail. Safe to run twice and beside itself.

    Step 1 marks it processing (and counts the attempt) and commits, so staff see it is on its
    way. Step 2 holds the payout's row lock across the rail call and records the answer in the
    same transaction: a concurrent sender skips it, and a crash before the commit leaves it
    processing for the next run, which asks the rail first and sends with the same key.
    ``RailUnavailable`` propagates (the task retries); a refusal fails the payout.
    """
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(skip_locked=True)
            .select_related("creator")
            .filter(pk=payout_id)
            .first()
        )
        if payout is None:
            return Payout.objects.get(pk=payout_id)
        if payout.status == PayoutStatus.REQUESTED:
            stopped = payout_send_check(payout)
            if stopped is not None:
                return stopped
            payout = _transition(
                payout,
                to=PayoutStatus.PROCESSING,
                allowed_from=[PayoutStatus.REQUESTED],
                sent_at=timezone.now(),
            )
        if payout.status != PayoutStatus.PROCESSING or payout.rail != Rail.STRIPE:
            # Manual payouts wait in processing for the staff's bank run.
            return payout
        Payout.objects.filter(pk=payout.pk).update(attempts=F("attempts") + 1)

    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(skip_locked=True)
            .select_related("creator")
            .filter(pk=payout_id, status=PayoutStatus.PROCESSING)
            .first()
        )
        if payout is None:
            return Payout.objects.get(pk=payout_id)
        if payout.attempts <= 1:
            # No transfer can exist yet: check again right before the rail call (the method row
            # stays locked until we commit, so it cannot change in between).
            stopped = payout_send_check(payout)
            if stopped is not None:
                return stopped
        try:
            transfer = None
            if payout.attempts > 1:
                transfer = rails.transfer_find(payout_id=payout.pk)
            if transfer is None:
                transfer = rails.transfer_create(
                    payout_id=payout.pk,
                    amount_minor=rails.to_minor(payout.amount.amount, str(payout.amount.currency)),
                    currency=str(payout.amount.currency),
                    destination=payout.destination,
                )
        except rails.RailError as exc:
            return _return_diamonds(
                payout,
                to=PayoutStatus.FAILED,
                allowed_from=[PayoutStatus.PROCESSING],
                actor=None,
                code=exc.failure_code,
                reason=f"The payout provider refused the transfer: {exc.message}",
            )
        return _record_paid(payout, reference=transfer.id, note="Stripe transfer created")


def payout_send_check(payout: Payout) -> Payout | None:
    """Whether a payout may go to its rail now; called by the sender, not only the batch.

    Between the batch (or staff approval) and the send, the creator's method may have changed.
    Inside the sender's transaction, with the method row locked so it cannot change until the
    send commits:

    - the destination is no longer the creator's (changed or removed): the payout fails and its
      diamonds return; the next batch pays the new destination once it is verified and held;
    - the method is not verified any more: the same;
    - the destination was set less than ``PAYOUT_DESTINATION_HOLD_HOURS`` ago: the payout
      stays where it is with ``held_until`` (the hourly ``payouts_send_released`` sends it).

    Returns the payout when it must not go now, None when it may.
    """
    method = PayoutMethod.objects.select_for_update().filter(creator_id=payout.creator_id).first()
    if method is None or method.rail != payout.rail or method.destination != payout.destination:
        return _return_diamonds(
            payout,
            to=PayoutStatus.FAILED,
            allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING],
            actor=None,
            code="destination_changed",
            reason="Not sent: the payout method changed after this payout was made.",
        )
    if not method.is_verified:
        return _return_diamonds(
            payout,
            to=PayoutStatus.FAILED,
            allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING],
            actor=None,
            code="method_unverified",
            reason="Not sent: the payout method is not verified.",
        )
    until = method.destination_held_until
    if until is None:
        return None
    if payout.held_until != until:
        changed = method.destination_changed_at
        Payout.objects.filter(pk=payout.pk).update(held_until=until, updated_at=timezone.now())
        PayoutEvent.objects.create(
            payout=payout,
            from_status=payout.status,
            to_status=payout.status,
            note=f"held until {until:%Y-%m-%d %H:%M} UTC: payout destination set "
            f"{changed:%Y-%m-%d %H:%M} UTC",
        )
        payout.refresh_from_db()
    return payout


def payouts_send_released() -> int:
    """Send the payouts whose destination hold has passed (beat, hourly). Returns how many."""
    due = list(
        Payout.objects.filter(held_until__lte=timezone.now())
        .filter(
            Q(status=PayoutStatus.REQUESTED) | Q(status=PayoutStatus.PROCESSING, rail=Rail.STRIPE)
        )
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        _enqueue_send(due)
    return len(due)


# --- Staff actions --------------------------------------------------------------------------


def _refuses_own_payout(action: str):
    """Staff may not act on their own payouts: refused (and audited) before the action's
    transaction opens, so the refusal's audit row stays although the action changes nothing."""

    def decorate(service):
        @wraps(service)
        def guarded(*, payout: Payout, actor, request=None, **kwargs):
            refuse_own_account(
                actor=actor, owner=payout.creator.user, action=action, obj=payout, request=request
            )
            return service(payout=payout, actor=actor, **kwargs)

        return guarded

    return decorate


@_refuses_own_payout("payout_approve")
@transaction.atomic
def payout_approve(*, payout: Payout, actor) -> Payout:
    method = PayoutMethod.objects.filter(creator_id=payout.creator_id).first()
    if "tax form" in payout.hold_reason and (
        method is None or method.tax_form_status == TaxFormStatus.MISSING
    ):
        raise PayoutStateError("Record the creator's tax form before approving this payout.")
    payout = _transition(
        payout,
        to=PayoutStatus.REQUESTED,
        allowed_from=[PayoutStatus.AWAITING_APPROVAL],
        actor=actor,
        note="approved",
        approved_at=timezone.now(),
        approved_by=actor,
    )
    _enqueue_send([payout.pk])
    return payout


@_refuses_own_payout("payout_cancel")
@transaction.atomic
def payout_cancel(*, payout: Payout, actor, reason: str) -> Payout:
    """Cancel a payout that has not gone to the rail yet; its diamonds return to available."""
    reason = (reason or "").strip() or "Cancelled by staff"
    return _return_diamonds(
        payout,
        to=PayoutStatus.CANCELLED,
        allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.AWAITING_APPROVAL],
        actor=actor,
        code="cancelled",
        reason=reason,
    )


@_refuses_own_payout("payout_mark_paid")
@transaction.atomic
def payout_mark_paid(*, payout: Payout, actor, reference: str = "") -> Payout:
    """Staff confirm a manual (bank run) payout went out."""
    if payout.rail != Rail.MANUAL:
        raise PayoutStateError("Stripe payouts are marked paid by the rail or reconciliation.")
    return _record_paid(payout, actor=actor, reference=reference, note="marked paid by staff")


@_refuses_own_payout("payout_mark_failed")
def payout_mark_failed(*, payout: Payout, actor, reason: str) -> Payout:
    """Staff record that a payout did not arrive; the diamonds return to available.

    For Stripe, only when the rail has no transfer for it: otherwise it was paid.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    if payout.rail == Rail.STRIPE and rails.transfer_find(payout_id=payout.pk) is not None:
        raise PayoutStateError("Stripe has a transfer for this payout: it was paid.")
    with transaction.atomic():
        return _return_diamonds(
            payout,
            to=PayoutStatus.FAILED,
            allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING],
            actor=actor,
            code="staff",
            reason=reason,
        )


@_refuses_own_payout("payout_retry")
@transaction.atomic
def payout_retry(*, payout: Payout, actor) -> Payout:
    """Send a stuck payout again (same idempotency key: it cannot be paid twice)."""
    if payout.status not in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING):
        raise PayoutStateError(f"Payout #{payout.pk} is {payout.status}; nothing to retry.")
    PayoutEvent.objects.create(
        payout=payout, from_status=payout.status, to_status=payout.status, actor=actor, note="retry"
    )
    _enqueue_send([payout.pk])
    return payout


# --- Reconciliation against the rail ---------------------------------------------------------


def _discrepancy(
    *, kind: str, object_ref: str, payout: Payout | None, expected: str, found: str, run
) -> bool:
    """One open discrepancy per problem (``wallets``' generic queue, shared with payments)."""
    object_type, _, object_id = object_ref.partition(":")
    if not object_id:
        object_type, object_id = "transfer", object_ref
    if payout is not None and object_type == "transfer":
        found = f"{found} (payout #{payout.pk})"
    _row, created = discrepancy_record(
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        expected=expected,
        found=found,
        run=run,
    )
    return created


@dataclass
class PayoutReconciliation:
    run: ReconciliationRun | None
    transfers: int = 0
    recovered: int = 0
    discrepancies: int = 0

    @property
    def summary(self) -> str:
        if self.run is None:
            return "payouts: another reconciliation is running; skipped"
        if self.run.status == "failed":
            return f"payouts: FAILED ({self.run.error[:300] or 'see the log'})"
        return (
            f"payouts: {self.transfers} transfers checked, {self.recovered} payouts recorded "
            f"paid, {self.discrepancies} new discrepancies"
        )


def payouts_reconcile(*, days: int | None = None) -> PayoutReconciliation:
    """Compare Stripe payouts with the transfers the rail reports over the last ``days``.

    A transfer for a payout still processing is its lost answer: recorded paid through the
    same service as the sender. Anything else that disagrees becomes a discrepancy for staff.
    """
    with advisory_lock("applause:reconcile:payouts") as acquired:
        if not acquired:
            return PayoutReconciliation(run=None)
        return _reconcile(days=days or settings.PAYOUT_RECONCILE_DAYS)


def _reconcile(*, days: int) -> PayoutReconciliation:
    window_start = timezone.now() - timedelta(days=days)
    now = timezone.now()
    run = ReconciliationRun.objects.create(
        kind="payouts", started_at=now, window_start=window_start, window_end=now
    )
    outcome = PayoutReconciliation(run=run)
    seen: dict[int, list[rails.Transfer]] = {}
    try:
        for transfer in rails.transfers_since(int(window_start.timestamp())):
            outcome.transfers += 1
            if transfer.payout_id is None:
                outcome.discrepancies += _discrepancy(
                    run=outcome.run,
                    kind="transfer_without_payout",
                    object_ref=transfer.id,
                    payout=None,
                    expected="a payout id in the transfer's metadata",
                    found=f"{transfer.amount_minor} {transfer.currency} to {transfer.destination}",
                )
                continue
            seen.setdefault(transfer.payout_id, []).append(transfer)
        payouts = Payout.objects.select_related("creator").in_bulk(list(seen))
        for payout_id, transfers in seen.items():
            payout = payouts.get(payout_id)
            outcome.recovered += _reconcile_one(payout_id, payout, transfers, outcome)
        # Paid here, nothing at the rail: created inside the window, so its transfer would be.
        listed = {t.id for ts in seen.values() for t in ts}
        for payout in Payout.objects.filter(
            rail=Rail.STRIPE, status=PayoutStatus.PAID, created_at__gte=window_start
        ).exclude(rail_reference__in=listed):
            outcome.discrepancies += _discrepancy(
                run=outcome.run,
                kind="payout_missing_at_rail",
                object_ref=f"payout:{payout.pk}",
                payout=payout,
                expected=f"transfer {payout.rail_reference or '?'} of {payout.amount}",
                found="no such transfer at Stripe",
            )
    except rails.RailUnavailable as exc:
        run.error = str(exc)[:10000]
        run.status = "failed"
        log.warning("payout reconciliation stopped: %s", exc)
    else:
        run.status = "done"
    run.counts = {
        "transfers": outcome.transfers,
        "recovered": outcome.recovered,
        "discrepancies": outcome.discrepancies,
    }
    run.finished_at = timezone.now()
    run.save()
    return outcome


def _reconcile_one(
    payout_id: int,
    payout: Payout | None,
    transfers: list[rails.Transfer],
    outcome: PayoutReconciliation,
) -> int:
    first = transfers[0]
    if payout is None:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_without_payout",
            object_ref=first.id,
            payout=None,
            expected=f"payout #{payout_id}",
            found="no such payout",
        )
        return 0
    if len(transfers) > 1:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="duplicate_transfer",
            object_ref=f"payout:{payout.pk}",
            payout=payout,
            expected="one transfer",
            found=", ".join(t.id for t in transfers),
        )
    expected_minor = rails.to_minor(payout.amount.amount, str(payout.amount.currency))
    if (
        first.amount_minor != expected_minor
        or first.currency != str(payout.amount.currency)
        or (payout.destination and first.destination != payout.destination)
    ):
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_mismatch",
            object_ref=first.id,
            payout=payout,
            expected=f"{expected_minor} {payout.amount.currency} to {payout.destination}",
            found=f"{first.amount_minor} {first.currency} to {first.destination}",
        )
        return 0
    if first.reversed:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_reversed",
            object_ref=first.id,
            payout=payout,
            expected="transfer kept",
            found="transfer reversed at Stripe",
        )
    if payout.status in (PayoutStatus.PROCESSING, PayoutStatus.REQUESTED):
        try:
            with transaction.atomic():
                locked = (
                    Payout.objects.select_for_update(skip_locked=True)
                    .filter(pk=payout.pk, status__in=[PayoutStatus.PROCESSING])
                    .first()
                )
                if locked is None:
                    return 0  # a sender holds it right now and will record the answer
                _record_paid(locked, reference=first.id, note="found at Stripe by reconciliation")
            return 1
        except PayoutStateError:
            return 0
    if payout.status in (PayoutStatus.FAILED, PayoutStatus.CANCELLED):
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_for_returned_payout",
            object_ref=first.id,
            payout=payout,
            expected=f"no transfer (payout {payout.status}, diamonds returned)",
            found=f"transfer {first.id} of {first.amount_minor} {first.currency}",
        )
    elif payout.status == PayoutStatus.PAID and payout.rail_reference != first.id:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_reference_mismatch",
            object_ref=first.id,
            payout=payout,
            expected=payout.rail_reference,
            found=first.id,
        )
    return 0


def payout_get_for_user(*, user, payout_id: int) -> Payout:
    payout = Payout.objects.filter(pk=payout_id, creator__user=user).first()
    if payout is None:
        raise NotFound()
    return payout
