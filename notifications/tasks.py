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


@shared_task
def webhook_endpoint_flush_task(endpoint_id: int) -> int:
    """Deliver one endpoint's due events in order. Beside itself, one of them waits its turn
    (the endpoint row lock); failures are retried by the beat flush when they are due."""
    from notifications.webhooks import webhook_endpoint_flush_queued

    return webhook_endpoint_flush_queued(endpoint_id=endpoint_id)


@shared_task
def webhook_flush_task() -> int:
    from notifications.webhooks import webhook_flush_all

    return webhook_flush_all()
