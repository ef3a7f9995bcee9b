"""Everything moderation writes: a creator's rules, decisions on messages, viewers' reports and
the support team's resolution of them. Each service audits the person who acted.

None of it touches the gift: decisions sit in their own rows, keyed by the gift event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from config.errors import InvalidInput, NotFound
from creators.models import Creator
from gifts.models import GiftEvent
from moderation.models import (
    BLOCKED_WORD_LENGTH_MAX,
    BLOCKED_WORDS_MAX,
    CreatorModeration,
    HiddenBy,
    HoldPeriod,
    MessageDecision,
    MessageReport,
    MutedViewer,
    ReportReason,
    ReportStatus,
)
from moderation.selectors import SHOWN, message_fate, policy_for, policy_forget

if TYPE_CHECKING:
    from accounts.models import User


NOTE_MAX = 500


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_message = "There is no such message."


class ViewerNotFound(NotFound):
    code = "viewer_not_found"
    default_message = "There is no viewer with that username."


def _forget_after_commit(creator_id: int) -> None:
    # Now (this request's own reads) and after the commit (a reader in between cached the
    # old rules); the cache holds them for seconds at most anyway.
    policy_forget(creator_id=creator_id)
    transaction.on_commit(lambda: policy_forget(creator_id=creator_id))


def _clean_words(words) -> list[str]:
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise InvalidInput(
            "blocked_words is a list of words.", fields={"blocked_words": ["A list of words."]}
        )
    cleaned: list[str] = []
    for word in words:
        word = " ".join(word.split())
        if not word:
            continue
        if len(word) > BLOCKED_WORD_LENGTH_MAX:
            raise InvalidInput(
                f"A blocked word is {BLOCKED_WORD_LENGTH_MAX} characters at most.",
                fields={"blocked_words": [f"{word[:20]}… is too long."]},
            )
        if word.casefold() not in {w.casefold() for w in cleaned}:
            cleaned.append(word)
    if len(cleaned) > BLOCKED_WORDS_MAX:
        raise InvalidInput(
            f"At most {BLOCKED_WORDS_MAX} blocked words.",
            fields={"blocked_words": [f"At most {BLOCKED_WORDS_MAX} words."]},
        )
    return cleaned


@transaction.atomic
def moderation_update(
    *,
    creator: Creator,
    actor: User,
    blocked_words: list[str] | None = None,
    hold_messages: bool | None = None,
) -> CreatorModeration:
    """Change a creator's blocked words and/or message holding. Turning holding on opens a
    hold period (every message from then on waits for approval); off closes it."""
    row, _ = CreatorModeration.objects.select_for_update().get_or_create(creator=creator)
    before = {"blocked_words": list(row.blocked_words), "hold_messages": row.hold_messages}
    if blocked_words is not None:
        row.blocked_words = _clean_words(blocked_words)
    if hold_messages is not None and hold_messages != row.hold_messages:
        now = timezone.now()
        if hold_messages:
            HoldPeriod.objects.create(creator=creator, started_at=now)
        else:
            HoldPeriod.objects.filter(creator=creator, ended_at__isnull=True).update(ended_at=now)
        row.hold_messages = hold_messages
    row.save()
    after = {"blocked_words": row.blocked_words, "hold_messages": row.hold_messages}
    if after != before:
        audit_record(
            actor=actor, action="moderation_update", obj=creator, before=before, after=after
        )
    _forget_after_commit(creator.pk)
    return row


def _viewer(username: str):
    username = (username or "").strip() if isinstance(username, str) else ""
    viewer = get_user_model().objects.filter(username__iexact=username).first()
    if not username or viewer is None:
        raise ViewerNotFound(fields={"username": ["No such viewer."]})
    return viewer


@transaction.atomic
def viewer_mute(*, creator: Creator, actor: User, username: str) -> MutedViewer:
    """Hide a viewer's messages to this creator (idempotent): their gifts still arrive."""
    viewer = _viewer(username)
    muted, created = MutedViewer.objects.get_or_create(creator=creator, user=viewer)
    if created:
        audit_record(actor=actor, action="viewer_mute", obj=creator, after={"user": viewer.pk})
        _forget_after_commit(creator.pk)
    return muted


@transaction.atomic
def viewer_unmute(*, creator: Creator, actor: User, username: str) -> None:
    viewer = _viewer(username)
    deleted, _ = MutedViewer.objects.filter(creator=creator, user=viewer).delete()
    if not deleted:
        raise ViewerNotFound("That viewer is not muted.")
    audit_record(actor=actor, action="viewer_unmute", obj=creator, before={"user": viewer.pk})
    _forget_after_commit(creator.pk)


def _creator_message(*, creator: Creator, event_id) -> GiftEvent:
    """One of the creator's gift events with a message; anyone else's is 404 (IDOR)."""
    try:
        event_id = int(event_id)
    except (TypeError, ValueError):
        raise MessageNotFound()
    event = (
        GiftEvent.objects.filter(pk=event_id, creator_id=creator.pk)
        .exclude(message="")
        .select_related("sender")
        .first()
    )
    if event is None:
        raise MessageNotFound()
    return event


def _decision(event: GiftEvent) -> MessageDecision:
    decision, _ = MessageDecision.objects.select_for_update().get_or_create(
        gift_event=event, defaults={"creator_id": event.creator_id, "live_id": event.live_id}
    )
    return decision


def _decide(
    *, creator: Creator, actor: User, event_id, action: str, field: str, **extra
) -> MessageDecision:
    """Stamp ``field`` (approved_at, hidden_at or dismissed_at) once; a repeat changes nothing."""
    event = _creator_message(creator=creator, event_id=event_id)
    decision = _decision(event)
    if getattr(decision, field) is None:
        now = timezone.now()
        setattr(decision, field, now)
        for name, value in extra.items():
            setattr(decision, name, value)
        decision.actor, decision.changed_at = actor, now
        decision.save()
        audit_record(actor=actor, action=action, obj=event, after={"gift_event": event.pk})
    return decision


@transaction.atomic
def message_approve(*, creator: Creator, actor: User, event_id) -> MessageDecision:
    """Show a held message (a hidden one stays hidden). Idempotent."""
    return _decide(
        creator=creator,
        actor=actor,
        event_id=event_id,
        action="message_approve",
        field="approved_at",
    )


@transaction.atomic
def message_reject(*, creator: Creator, actor: User, event_id) -> MessageDecision:
    """Hide a message for good (held or already shown): it leaves the feed and the pins."""
    return _decide(
        creator=creator,
        actor=actor,
        event_id=event_id,
        action="message_reject",
        field="hidden_at",
        hidden_by=HiddenBy.CREATOR,
    )


@transaction.atomic
def message_dismiss(*, creator: Creator, actor: User, event_id) -> MessageDecision:
    """Take a message off the pinned strip before its time is up. Idempotent."""
    return _decide(
        creator=creator,
        actor=actor,
        event_id=event_id,
        action="message_dismiss",
        field="dismissed_at",
    )


# --- Reports ----------------------------------------------------------------------------------


@transaction.atomic
def message_report(
    *, reporter, event_id, reason: str, note: str = ""
) -> tuple[MessageReport, bool]:
    """A signed-in viewer reports a message they can see. Once per person and message: a
    repeat returns the first report (``created`` False). Messages nobody can see are 404."""
    try:
        event_id = int(event_id)
    except (TypeError, ValueError):
        raise MessageNotFound()
    event = GiftEvent.objects.filter(pk=event_id).exclude(message="").first()
    if event is None:
        raise MessageNotFound()
    decision = MessageDecision.objects.filter(gift_event=event).first()
    policy = policy_for(creator_id=event.creator_id)
    if message_fate(event, policy=policy, decision=decision) != SHOWN:
        raise MessageNotFound()
    if reason not in ReportReason.values:
        raise InvalidInput(
            "Choose a reason.",
            fields={"reason": [f"One of: {', '.join(ReportReason.values)}."]},
        )
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise InvalidInput(
            f"The note is {NOTE_MAX} characters at most.",
            fields={"note": [f"At most {NOTE_MAX} characters."]},
        )
    existing = MessageReport.objects.filter(gift_event=event, reporter=reporter).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            report = MessageReport.objects.create(
                gift_event=event, reporter=reporter, reason=reason, note=note.strip()
            )
    except IntegrityError:  # the same person's double click, committed first by the other
        return MessageReport.objects.get(gift_event=event, reporter=reporter), False
    audit_record(actor=reporter, action="message_report", obj=event, after={"reason": reason})
    return report, True


@transaction.atomic
def reports_resolve(
    *, actor: User, event_id: int, hide: bool, reason: str = "", request=None
) -> int:
    """Support's answer to a reported message: hide it (everywhere messages show) or dismiss
    its reports. Closes every open report of that message; returns how many."""
    event = GiftEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise MessageNotFound()
    now = timezone.now()
    if hide:
        decision = _decision(event)
        if decision.hidden_at is None:
            decision.hidden_at, decision.hidden_by = now, HiddenBy.STAFF
            decision.actor, decision.changed_at = actor, now
            decision.save()
    closed = MessageReport.objects.filter(gift_event=event, status=ReportStatus.OPEN).update(
        status=ReportStatus.HIDDEN if hide else ReportStatus.DISMISSED,
        resolved_at=now,
        resolved_by=actor,
    )
    audit_record(
        actor=actor,
        action="message_hide" if hide else "message_reports_dismiss",
        obj=event,
        after={"gift_event": event.pk, "reports_closed": closed},
        reason=reason,
        request=request,
    )
    return closed
