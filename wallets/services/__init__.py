"""Everything in ``wallets`` that writes: the ledger, recharges, refunds and disputes, Stripe
webhooks and payment reconciliation. Other apps import from here (``wallets.services``)."""

from wallets.services.chargebacks import chargeback_allocate, chargeback_reverse
from wallets.services.discrepancies import discrepancy_record, discrepancy_resolve
from wallets.services.disputes import recharge_dispute_close, recharge_dispute_open
from wallets.services.ledger import (
    TRANSACTION_BAN_PREFIX,
    LedgerImbalance,
    Posting,
    PostResult,
    account_balance,
    account_get,
    account_rollup,
    hot_accounts_rollup,
    ledger_post,
    platform_account,
    wallet_adjust,
    wallet_check_can_spend,
    wallet_freeze,
    wallet_frozen_error,
    wallet_get,
    wallet_unfreeze,
)
from wallets.services.limits import (
    ConfirmationRequired,
    SpendingLimitExceeded,
    spending_limits_effective,
    spending_limits_set,
)
from wallets.services.locks import advisory_lock
from wallets.services.packages import (
    PriceChangeConflict,
    SecondFinanceMemberRequired,
    coin_package_price_approve,
    coin_package_price_propose,
    coin_package_price_reject,
)
from wallets.services.purchase import recharge_create
from wallets.services.purchase_finish import recharge_finish, recharges_finish_abandoned
from wallets.services.recharges import (
    PaymentProviderError,
    coin_debt_write_off,
    recharge_apply_success,
    recharge_mark_failed,
    recharge_quote,
)
from wallets.services.reconciliation import payments_reconcile
from wallets.services.refunds import (
    recharge_refund,
    recharge_refund_apply,
    recharge_refund_from_stripe,
    recharge_refunds_sync,
)
from wallets.services.self_refund import (
    recharge_self_refund,
    self_refund_finish,
    self_refund_status,
    self_refunds_finish_abandoned,
)
from wallets.services.staff_refunds import recharge_refund_by_staff
from wallets.services.stripe_calls import PaymentProviderUnavailable, stripe_customer_get
from wallets.services.webhooks import stripe_webhook_receive

__all__ = [
    "TRANSACTION_BAN_PREFIX",
    "ConfirmationRequired",
    "LedgerImbalance",
    "PaymentProviderError",
    "PaymentProviderUnavailable",
    "PostResult",
    "Posting",
    "PriceChangeConflict",
    "SecondFinanceMemberRequired",
    "SpendingLimitExceeded",
    "account_balance",
    "account_get",
    "account_rollup",
    "advisory_lock",
    "chargeback_allocate",
    "chargeback_reverse",
    "coin_debt_write_off",
    "coin_package_price_approve",
    "coin_package_price_propose",
    "coin_package_price_reject",
    "discrepancy_record",
    "discrepancy_resolve",
    "hot_accounts_rollup",
    "ledger_post",
    "payments_reconcile",
    "platform_account",
    "recharge_apply_success",
    "recharge_create",
    "recharge_dispute_close",
    "recharge_dispute_open",
    "recharge_finish",
    "recharge_mark_failed",
    "recharge_quote",
    "recharge_refund",
    "recharge_refund_apply",
    "recharge_refund_by_staff",
    "recharge_refund_from_stripe",
    "recharge_refunds_sync",
    "recharge_self_refund",
    "recharges_finish_abandoned",
    "self_refund_finish",
    "self_refund_status",
    "self_refunds_finish_abandoned",
    "spending_limits_effective",
    "spending_limits_set",
    "stripe_customer_get",
    "stripe_webhook_receive",
    "wallet_adjust",
    "wallet_check_can_spend",
    "wallet_freeze",
    "wallet_frozen_error",
    "wallet_get",
    "wallet_unfreeze",
]
