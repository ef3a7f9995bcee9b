from celery import shared_task

from memberships.services import memberships_renew


@shared_task(acks_late=True)
def renew_memberships_task() -> str:
    """Renew every membership due (exactly once per period: safe to run twice, beside itself,
    or again after a worker died mid-run)."""
    return memberships_renew().summary
