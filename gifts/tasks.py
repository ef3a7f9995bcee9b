from celery import shared_task

from gifts.goals import goals_settle_due


@shared_task(acks_late=True)
def goals_settle_due_task() -> int:
    """Close every goal past its deadline; all-or-nothing ones pay or refund (exactly once).

    Safe to run twice and beside itself: each goal settles in its own transaction under the
    goal row's lock and its own idempotency key (gifts/goals.py).
    """
    return sum(1 for settled in goals_settle_due() if settled.moved)
