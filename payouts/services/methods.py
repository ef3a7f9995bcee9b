"""Payout methods: where a creator's payouts go, the password confirmation a change needs,
and staff verification (Stripe asks Stripe; bank details take four eyes)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record, refuse_own_account
from accounts.client_address import ClientRequest
from config.errors import DomainError, InvalidInput
from creators.models import Creator
from creators.selectors import creator_of
from payouts import rails
from payouts.destination import destination_change_record
from payouts.models import PayoutMethod, Rail, TaxFormStatus
from payouts.services.errors import NotACreator, PasswordIncorrect

if TYPE_CHECKING:
    from accounts.models import User


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


def creator_required(*, user: User) -> Creator:
    """The user's creator profile; 403 ``not_a_creator`` for anyone else (payouts are only
    for creators)."""
    creator = creator_of(user=user)
    if creator is None:
        raise NotACreator()
    return creator


def password_confirm(*, user: User, password: str, request: ClientRequest | None = None) -> None:
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
    user: User,
    password: str,
    rail: str,
    account_holder: str = "",
    iban: str = "",
    refresh_url: str = "",
    return_url: str = "",
    request: ClientRequest | None = None,
) -> MethodResult:
    """Set the caller's payout method, confirmed with the password. A different destination
    clears verification and starts the destination hold (``PAYOUT_DESTINATION_HOLD_HOURS``).

    For Stripe, a Connect account is created once per creator (idempotency key from the
    creator id) and the answer carries a fresh onboarding link. The Stripe calls happen outside
    the database transaction; the row update is short.
    """
    creator = creator_required(user=user)
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
    changes: dict[str, Any],
    *,
    keep_verified: bool,
    destination_same: bool | None = None,
    request: ClientRequest | None = None,
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


def _method_state(method: PayoutMethod) -> dict[str, Any]:
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


def payout_method_verify(
    *, method: PayoutMethod, actor: User | None, request: ClientRequest | None = None
) -> PayoutMethod:
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


def payout_method_refresh(*, method: PayoutMethod, actor: User | None = None) -> PayoutMethod:
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
    *, method: PayoutMethod, status: str, actor: User, request: ClientRequest | None = None
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
    with transaction.atomic():
        before = {"verified": method.is_verified, "tax_form": method.tax_form_status}
        PayoutMethod.objects.filter(pk=method.pk).update(
            tax_form_status=status,
            tax_form_received_at=None if status == TaxFormStatus.MISSING else timezone.now(),
            updated_at=timezone.now(),
        )
        method.refresh_from_db()
        audit_record(
            actor=actor,
            action="payout_method_tax_form",
            obj=method,
            before=before,
            after={"verified": method.is_verified, "tax_form": method.tax_form_status},
            request=request,
        )
    return method
