from celery import shared_task

from accounts.services import password_reset_send
from config.celery import DATABASE_ERRORS


@shared_task(
    autoretry_for=(OSError, *DATABASE_ERRORS),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def password_reset_send_task(email: str, site_url: str) -> int:
    """Mail the reset link (if the address has an account). Retried when SMTP is down."""
    return password_reset_send(email=email, site_url=site_url)
