"""The support team's moderation queue in the admin: open reports, hide or dismiss, audited."""

from accounts.tests.factories import UserFactory
from moderation.models import MessageReport, ReportStatus
from moderation.selectors import HIDDEN, SHOWN, message_fate, policy_for
from staff.models import AuditLog
from staff.permissions import FINANCE, SUPPORT
from staff.tests.factories import staff_user, verified_client
from tests.helpers import client_for


def _reported(star, fan, send, text, reporters=1):
    event = send(fan, star, message=text)
    for _ in range(reporters):
        client_for(UserFactory()).post(f"/api/v1/messages/{event.pk}/report/", {"reason": "abuse"})
    return event


def _fate(event):
    event.refresh_from_db()
    decision = getattr(event, "decision", None)
    return message_fate(event, policy=policy_for(creator_id=event.creator_id), decision=decision)


def test_support_sees_the_queue_and_hides_a_message(star, fan, send):
    worst = _reported(star, fan, send, "the worst words", reporters=2)
    mild = _reported(star, fan, send, "mildly annoying")
    support = staff_user(SUPPORT)
    admin = verified_client(support)

    page = admin.get("/admin/moderation/messagereport/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("the worst words") < html.index("mildly annoying")  # most reported first

    worst_reports = list(
        MessageReport.objects.filter(gift_event=worst).values_list("pk", flat=True)
    )
    answer = admin.post(
        "/admin/moderation/messagereport/",
        {"action": "hide_messages", "_selected_action": worst_reports[:1]},
        follow=True,
    )
    assert answer.status_code == 200
    assert _fate(worst) == HIDDEN
    assert not MessageReport.objects.filter(gift_event=worst, status=ReportStatus.OPEN).exists()
    assert AuditLog.objects.filter(action="message_hide", actor=support).count() == 1

    mild_report = MessageReport.objects.get(gift_event=mild)
    admin.post(
        "/admin/moderation/messagereport/",
        {"action": "dismiss_reports", "_selected_action": [mild_report.pk]},
    )
    mild_report.refresh_from_db()
    assert mild_report.status == ReportStatus.DISMISSED
    assert _fate(mild) == SHOWN
    # The queue (open reports) is empty now.
    assert "mildly annoying" not in admin.get("/admin/moderation/messagereport/").content.decode()


def test_finance_may_look_but_not_hide(star, fan, send):
    event = _reported(star, fan, send, "reported once")
    finance = verified_client(staff_user(FINANCE))
    assert finance.get("/admin/moderation/messagereport/").status_code == 200
    report = MessageReport.objects.get(gift_event=event)
    finance.post(
        "/admin/moderation/messagereport/",
        {"action": "hide_messages", "_selected_action": [report.pk]},
    )
    assert _fate(event) == SHOWN
    report.refresh_from_db()
    assert report.status == ReportStatus.OPEN
