from celery import shared_task

from creators.services import earnings_release


@shared_task(acks_late=True)
def release_earnings_task() -> int:
    """Move matured pending diamonds to available for every creator (idempotent)."""
    return sum(result.diamonds for result in earnings_release())
