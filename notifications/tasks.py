from celery import shared_task
from django.conf import settings
from django.utils import timezone

from notifications.models import EmailStatus
from notifications.services import email_outbox_flush, email_send


@shared_task(bind=True, max_retries=settings.EMAIL_MAX_ATTEMPTS)
def email_send_task(self, email_id: int) -> str:
    """Send one outbox message; a failed attempt is retried when the row says it is due.
    Running twice, or beside the sweep, sends it once (the row lock and its status)."""
    row = email_send(email_id=email_id)
    if row is None:
        return "not pending"
    if row.status == EmailStatus.PENDING:
        delay = max(1, int((row.next_attempt_at - timezone.now()).total_seconds()))
        raise self.retry(countdown=delay)
    return str(row.status)


@shared_task
def email_outbox_flush_task() -> dict:
    return email_outbox_flush()
