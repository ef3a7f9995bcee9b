"""The creator's control room (``/creator/live/``): the live's goal, pinned strip and
messages, with approve / hide / dismiss / mute buttons and the creator's moderation rules.

Plain forms (CSRF, keyboard, no script needed); each POST calls one service and comes back
to the room. A small script (static/js/control-room.js) refreshes the room while live.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.errors import DomainError
from creators.selectors import creator_live_session, creator_of
from gifts import views as gift_views
from gifts.goals import goals_progress
from moderation import services
from moderation.models import CreatorModeration
from moderation.selectors import (
    messages_held,
    messages_recent,
    muted_viewers,
    pin_tiers,
    pinned_messages,
)

ROOM = "/creator/live/"


def _room_context(creator) -> dict:
    live = creator_live_session(creator_id=creator.pk)
    rules = CreatorModeration.objects.filter(creator=creator).first()
    context = {
        "creator": creator,
        "live": live,
        "pins": [],
        "held": [],
        "recent": [],
        "muted": list(muted_viewers(creator_id=creator.pk).order_by("user__username")),
        "blocked_words": "\n".join(rules.blocked_words) if rules else "",
        "hold_messages": bool(rules and rules.hold_messages),
        "goals": [],
        "pin_min_coins": tiers[0].min_coins if (tiers := pin_tiers()) else 0,
    }
    if live is not None:
        context["pins"] = pinned_messages(creator_id=creator.pk, live_id=live.live_id)
        context["held"] = messages_held(creator_id=creator.pk, live_id=live.live_id)
        context["recent"] = messages_recent(creator_id=creator.pk, live_id=live.live_id)
    # Open goals (issue 19, part 1): while live, this live's and the creator's period goals.
    context["goals"] = goals_progress(
        creator_id=creator.pk, live_id=live.live_id if live else None, open_only=True
    )
    return context


@login_required
def control_room(request):
    """GET: the room. POST (the dashboard's go-live switch, kept at this address)."""
    if request.method == "POST":
        return gift_views.creator_live_toggle(request)
    creator = creator_of(user=request.user)
    if creator is None:
        return render(request, "creators/become.html", {})
    context = _room_context(creator)
    template = "moderation/_room.html" if request.GET.get("part") == "room" else None
    return render(request, template or "moderation/control_room.html", context)


def _act(request, action) -> None:
    creator = creator_of(user=request.user)
    if creator is None:
        raise Http404("Not a creator.")
    try:
        note = action(creator)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if note:
            messages.success(request, note)


@login_required
@require_POST
def message_action(request, event_id: int, action: str):
    decide = {
        "approve": (services.message_approve, "Message approved."),
        "reject": (services.message_reject, "Message hidden."),
        "dismiss": (services.message_dismiss, "Message taken off the pinned strip."),
    }.get(action)
    if decide is None:
        raise Http404("No such action.")
    service, note = decide
    _act(
        request,
        lambda creator: service(creator=creator, actor=request.user, event_id=event_id) and note,
    )
    return redirect(f"{ROOM}#messages")


@login_required
@require_POST
def mute(request):
    username = request.POST.get("username", "")

    def act(creator):
        if request.POST.get("undo"):
            services.viewer_unmute(creator=creator, actor=request.user, username=username)
            return f"{username} is no longer muted."
        services.viewer_mute(creator=creator, actor=request.user, username=username)
        return f"{username} is muted: their gifts still arrive, without text."

    _act(request, act)
    return redirect(f"{ROOM}#muted")


@login_required
@require_POST
def rules(request):
    words = request.POST.get("blocked_words", "").replace(",", "\n").splitlines()

    def act(creator):
        services.moderation_update(
            creator=creator,
            actor=request.user,
            blocked_words=words,
            hold_messages=request.POST.get("hold_messages") == "on",
        )
        return "Moderation settings saved."

    _act(request, act)
    return redirect(f"{ROOM}#rules")
