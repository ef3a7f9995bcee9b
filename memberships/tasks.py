import logging

from celery import shared_task

from memberships.services import membership_notices_send_all, memberships_renew

log = logging.getLogger(__name__)


@shared_task(acks_late=True)
def renew_memberships_task() -> str:
    """Renew every membership due (exactly once per period: safe to run twice, beside itself,
    or again after a worker died mid-run); then have the members' mails written."""
    summary = memberships_renew().summary
    try:
        membership_notices_send_task.delay()
    except Exception:  # the beat sweep sends them within a minute
        log.warning("could not queue membership notices; the beat sweep will send them")
    return summary


@shared_task(acks_late=True)
def membership_notices_send_task() -> int:
    """Turn pending membership notices into outbox mails (each once, however often it runs)."""
    return membership_notices_send_all()
