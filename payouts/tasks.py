from celery import Task, shared_task
from django.conf import settings

from config.celery import DATABASE_ERRORS
from payouts.rails import RailUnavailable
from payouts.services import payout_batch_run, payout_send, payouts_send_released


@shared_task(
    bind=True,
    autoretry_for=(RailUnavailable, *DATABASE_ERRORS),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.PAYOUT_SEND_MAX_RETRIES,
)
def payout_send_task(self: Task, payout_id: int) -> str:
    """Send one payout. Retried with backoff on network and database errors only; the rail's
    idempotency key (the payout id) makes every retry the same transfer."""
    return payout_send(payout_id=payout_id).status


@shared_task(acks_late=True)
def payout_send_many_task(payout_ids: list[int]) -> dict[str, int]:
    """Send one chunk of a batch's payouts, each with its own idempotency key at the rail.

    A payout the rail cannot be reached for right now gets its own ``payout_send_task`` (with
    its backoff and retries); the chunk goes on. Safe to run twice: ``payout_send`` skips what
    another worker holds and what is no longer due.
    """
    statuses: dict[str, int] = {}
    for payout_id in payout_ids:
        try:
            status = payout_send(payout_id=payout_id).status
        except RailUnavailable:
            payout_send_task.delay(payout_id)
            status = "retrying"
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


@shared_task
def payout_batch_task() -> str:
    return payout_batch_run().summary


@shared_task
def payouts_send_released_task() -> int:
    return payouts_send_released()


@shared_task
def reconcile_task() -> str:
    from payouts.reconcile import reconcile_all

    return reconcile_all()


@shared_task
def weekly_digest_task() -> int:
    from payouts.digest import weekly_digest_enqueue

    return weekly_digest_enqueue()
