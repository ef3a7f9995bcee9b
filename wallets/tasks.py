from celery import shared_task

from wallets.services import hot_accounts_rollup


@shared_task
def rollup_hot_accounts_task() -> int:
    return hot_accounts_rollup()
