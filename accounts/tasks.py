from celery import shared_task

from accounts.services import password_reset_send
from config.celery import DATABASE_ERRORS


@shared_task(
    acks_late=True,
    autoretry_for=DATABASE_ERRORS,
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def password_reset_send_task(email: str, site_url: str, request_id: str = "") -> int:
    """Write the reset mail (if the address has an account) to the email outbox, which sends
    and retries it. Safe to run twice: one ``request_id`` is one outbox row per account."""
    return password_reset_send(email=email, site_url=site_url, request_id=request_id or "legacy")
