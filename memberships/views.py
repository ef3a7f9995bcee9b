"""Portal pages: join a tier from a creator's page, see and cancel my memberships
(/wallet/memberships/), edit tiers on the creator dashboard. Forms post here; the services
do the work (a hidden client key makes a double submit join once)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.errors import DomainError
from creators.selectors import creator_of
from memberships.models import Tier
from memberships.selectors import memberships_of, notices_of, renewal_preview
from memberships.services import membership_cancel, membership_join, tier_create, tier_update


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
@require_POST
def membership_join_form(request, handle: str):
    try:
        result = membership_join(
            member=request.user,
            creator_handle=handle,
            tier_id=_int(request.POST.get("tier")) or 0,
            client_key=request.POST.get("client_key", ""),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(f"/creators/{handle}/#tiers")
    membership = result.membership
    if result.charged or result.replayed:
        messages.success(
            request,
            f"Welcome to {membership.tier.name}! Paid until "
            f"{membership.current_period_end:%d %b %Y}.",
        )
    elif membership.next_tier_id:
        messages.success(request, "Your tier changes at your next renewal.")
    else:
        messages.success(request, "Your membership renews again.")
    return redirect("/wallet/memberships/")


@login_required
def memberships_page(request):
    rows = [(m, renewal_preview(m)) for m in memberships_of(user=request.user)]
    return render(
        request,
        "memberships/list.html",
        {"rows": rows, "notices": notices_of(user=request.user)},
    )


@login_required
@require_POST
def membership_cancel_form(request, membership_id: int):
    try:
        membership = membership_cancel(member=request.user, membership_id=membership_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Cancelled. Your perks run until {membership.current_period_end:%d %b %Y}.",
        )
    return redirect("/wallet/memberships/")


def _coins(value) -> int | None:
    number = _int(value)
    return number if number is not None else None


@login_required
@require_POST
def tier_save_form(request, tier_id: int | None = None):
    creator = creator_of(user=request.user)
    if creator is None:
        return redirect("/creator/")
    name = request.POST.get("name", "")
    coins = _coins(request.POST.get("coins_per_month"))
    perks = request.POST.get("perks", "")
    try:
        if coins is None:
            messages.error(request, "The price is a whole number of coins.")
            return redirect("/creator/#tiers")
        if tier_id is None:
            tier_create(creator=creator, name=name, coins_per_month=coins, perks=perks)
            messages.success(request, f"Tier “{name.strip()}” added.")
        else:
            tier = Tier.objects.filter(pk=tier_id, creator=creator).first()
            if tier is None:
                messages.error(request, "There is no such tier.")
                return redirect("/creator/#tiers")
            old_price = tier.coins_per_month
            tier = tier_update(
                tier=tier, actor=request.user, name=name, coins_per_month=coins, perks=perks
            )
            note = ""
            if tier.coins_per_month != old_price and tier.price_effective_at:
                note = (
                    f" Members pay the new price from their first renewal on or after "
                    f"{tier.price_effective_at:%d %b %Y}; they have been told."
                )
            messages.success(request, f"Tier “{tier.name}” saved.{note}")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("/creator/#tiers")
