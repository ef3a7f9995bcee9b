"""Everything that writes payouts. Diamonds move only through ``wallets.services.ledger_post``.

The state machine (docs/payouts.md)::

    awaiting_approval ─approve─▶ requested ─send─▶ processing ─rail ok─▶ paid
            │                        │                  │
            └──────cancel────────────┴──────────────────┴──rail refused / staff─▶ failed
                                                                          (or cancelled)

Every transition is a conditional UPDATE on the current status (so two workers, or a worker
and a staff member, cannot both move one payout) plus a ``PayoutEvent`` and, where diamonds
move, a ledger transaction keyed on the payout id in the same database transaction.

By concern:

- ``methods``: payout methods (where payouts go), the password confirmation, verification;
- ``transitions``: the money conversions and the transitions with their ledger moves;
- ``batch``: the payout batch (set-based on PostgreSQL, one by one elsewhere);
- ``send``: sending one payout to its rail, the destination hold;
- ``actions``: staff actions on one payout;
- ``reconciliation``: Stripe's transfers compared with our payouts;
- ``errors``: the domain errors.

Import the public names from here (``from payouts.services import payout_send``).
"""

from payouts.services.actions import (
    payout_approve,
    payout_cancel,
    payout_mark_failed,
    payout_mark_paid,
    payout_retry,
)
from payouts.services.batch import (
    BatchResult,
    create_payouts_one_by_one,
    payout_batch_run,
    payout_candidates,
    payout_holds,
)
from payouts.services.errors import NotACreator, PasswordIncorrect, PayoutStateError
from payouts.services.methods import (
    MethodResult,
    SecondApproverRequired,
    creator_required,
    iban_normalize,
    password_confirm,
    payout_method_record_tax_form,
    payout_method_refresh,
    payout_method_set,
    payout_method_verify,
)
from payouts.services.reconciliation import PayoutReconciliation, payouts_reconcile
from payouts.services.send import payout_send, payout_send_check, payouts_send_released
from payouts.services.transitions import diamonds_value, minimum_payout_diamonds

__all__ = [
    "BatchResult",
    "MethodResult",
    "NotACreator",
    "PasswordIncorrect",
    "PayoutReconciliation",
    "PayoutStateError",
    "SecondApproverRequired",
    "create_payouts_one_by_one",
    "creator_required",
    "diamonds_value",
    "iban_normalize",
    "minimum_payout_diamonds",
    "password_confirm",
    "payout_approve",
    "payout_batch_run",
    "payout_cancel",
    "payout_candidates",
    "payout_holds",
    "payout_mark_failed",
    "payout_mark_paid",
    "payout_method_record_tax_form",
    "payout_method_refresh",
    "payout_method_set",
    "payout_method_verify",
    "payout_retry",
    "payout_send",
    "payout_send_check",
    "payouts_reconcile",
    "payouts_send_released",
]
