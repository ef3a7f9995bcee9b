"""Demo moderation: the demo creator blocks a word, and one demo message waits in the support
team's report queue (/admin/moderation/messagereport/). Idempotent."""

from django.contrib.auth import get_user_model

from creators.models import Creator
from gifts.models import GiftEvent
from moderation.models import CreatorModeration, ReportReason
from moderation.services import message_report, moderation_update


def seed(out) -> None:
    creator = Creator.objects.filter(handle="demo").first()
    if creator is None:
        return
    if not CreatorModeration.objects.filter(creator=creator).exists():
        moderation_update(creator=creator, actor=creator.user, blocked_words=["spoiler"])
    reporter = get_user_model().objects.filter(username="leo_live").first()
    reported = GiftEvent.objects.filter(creator=creator, message="First!").order_by("pk").first()
    if reporter is not None and reported is not None:
        message_report(
            reporter=reporter, event_id=reported.pk, reason=ReportReason.SPAM, note="Demo report"
        )
    out.append("control room /creator/live/ (login 'creator'); a demo report in the admin queue")
