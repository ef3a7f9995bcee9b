"""Everything in ``wallets`` that writes (see the modules of this package)."""

from wallets.services.ledger import *  # noqa: F403
from wallets.services.ledger import (  # noqa: F401
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
    wallet_get,
    wallet_unfreeze,
)
