"""One reconciliation run: payments (``wallets``, when it offers it) and then payouts."""

import logging
from importlib import import_module

from payouts.services import payouts_reconcile

log = logging.getLogger(__name__)

# Tried in order; the payments side lives in ``wallets`` and may not be deployed yet.
PAYMENT_RECONCILERS = (("wallets.services", "payments_reconcile"),)


def _payments_reconcile():
    for module_name, function_name in PAYMENT_RECONCILERS:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        function = getattr(module, function_name, None)
        if callable(function):
            return function
    return None


def _describe(run) -> str:
    """A ``wallets.ReconciliationRun``: its status and counts on one line."""
    counts = getattr(run, "counts", None) or {}
    status = getattr(run, "status", "done")
    details = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items())
    return f"{status}" + (f" ({details})" if details else "")


def reconcile_all() -> str:
    """Run both reconciliations; one failing does not stop the other. One-line summary."""
    parts = []
    payments = _payments_reconcile()
    if payments is None:
        parts.append("payments: not available yet")
    else:
        try:
            parts.append("payments: " + _describe(payments()))
        except Exception as exc:  # the payout side must still run
            log.exception("payment reconciliation failed")
            parts.append(f"payments: FAILED ({exc})")
    parts.append(payouts_reconcile().summary)
    return "reconcile: " + "; ".join(parts)
