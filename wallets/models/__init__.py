"""The wallets app's models, by concern (Django finds them because they are imported here):

- ``ledger``: accounts, journal transactions and immutable entries (see LEDGER.md);
- ``packages``: coin packages, their prices and scheduled price changes;
- ``payments``: Stripe customers, recharges, refunds, webhook events, disputes;
- ``reconciliation``: reconciliation runs and discrepancies (payouts reuse them);
- ``protections``: spending limits and chargeback allocations.

Import them from here (``from wallets.models import Account``).
"""

from wallets.models.ledger import (
    HOT_KINDS,
    NON_NEGATIVE_KINDS,
    NON_POSITIVE_KINDS,
    UNIT_OF_KIND,
    USER_KINDS,
    Account,
    AccountKind,
    Entry,
    LedgerTransaction,
    TransactionKind,
    Unit,
)
from wallets.models.packages import (
    CoinPackage,
    CoinPackagePrice,
    CoinPackagePriceChange,
    PriceChangeStatus,
)
from wallets.models.payments import (
    CREDITED_STATUSES,
    RECHARGE_PUBLIC_CHOICES,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    RefundStatus,
    StripeCustomer,
    StripeDispute,
    StripeEvent,
    recharge_row_new,
)
from wallets.models.protections import ChargebackAllocation, SpendingLimits
from wallets.models.reconciliation import Discrepancy, DiscrepancyStatus, ReconciliationRun

__all__ = [
    "CREDITED_STATUSES",
    "HOT_KINDS",
    "NON_NEGATIVE_KINDS",
    "NON_POSITIVE_KINDS",
    "RECHARGE_PUBLIC_CHOICES",
    "UNIT_OF_KIND",
    "USER_KINDS",
    "Account",
    "AccountKind",
    "ChargebackAllocation",
    "CoinPackage",
    "CoinPackagePrice",
    "CoinPackagePriceChange",
    "Discrepancy",
    "DiscrepancyStatus",
    "Entry",
    "LedgerTransaction",
    "PriceChangeStatus",
    "Recharge",
    "RechargeRefund",
    "RechargeStatus",
    "ReconciliationRun",
    "RefundSource",
    "RefundStatus",
    "SpendingLimits",
    "StripeCustomer",
    "StripeDispute",
    "StripeEvent",
    "TransactionKind",
    "Unit",
    "recharge_row_new",
]
