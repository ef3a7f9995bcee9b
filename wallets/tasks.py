from typing import Any

from celery import shared_task

from wallets.services import (
    hot_accounts_rollup,
    payments_reconcile,
    recharges_finish_abandoned,
    self_refunds_finish_abandoned,
)


@shared_task
def rollup_hot_accounts_task() -> int:
    return hot_accounts_rollup()


@shared_task
def payments_reconcile_task() -> dict[str, Any]:
    """Safe to run twice and beside itself: the service takes an advisory lock."""
    run = payments_reconcile()
    return {"run": run.pk, "status": run.status, **run.counts}


@shared_task
def recharges_finish_abandoned_task() -> dict[str, int]:
    """Recharges left ``creating`` (their client never retried): credited if paid, else their
    PaymentIntent canceled and the recharge failed; then self refunds left ``requested``
    (refunded at Stripe and recorded). Safe beside retries and itself."""
    counts = dict(recharges_finish_abandoned())
    counts.update({f"self_refund_{k}": v for k, v in self_refunds_finish_abandoned().items()})
    return counts


@shared_task
def recharge_receipts_task(recharge_ids: list[int]) -> int:
    """The receipts of a reconciliation page's credits (written after its commit). Safe to
    run twice; a lost task is made good by the next reconciliation."""
    from wallets.services.reconcile_bulk import recharge_receipts_write

    return recharge_receipts_write(recharge_ids=recharge_ids)
