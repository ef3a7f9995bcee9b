"""One reconciliation run: payments (``wallets``, when it offers it) and then payouts."""

import logging
from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.db import InterfaceError, OperationalError

from payouts.services import payouts_reconcile

log = logging.getLogger(__name__)

# Tried in order; the payments side lives in ``wallets`` and may not be deployed yet.
PAYMENT_RECONCILERS = (("wallets.services", "payments_reconcile"),)


def _payments_reconcile() -> Callable[[], Any] | None:
    for module_name, function_name in PAYMENT_RECONCILERS:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        function: Callable[[], Any] | None = getattr(module, function_name, None)
        if callable(function):
            return function
    return None


def _describe(run: Any) -> str:
    """A ``wallets.ReconciliationRun``: its status and counts on one line."""
    counts = getattr(run, "counts", None) or {}
    status = getattr(run, "status", "done")
    details = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items())
    return f"{status}" + (f" ({details})" if details else "")


def reconcile_all_checked() -> tuple[str, bool]:
    """Run both reconciliations; one failing does not stop the other.

    Returns the one-line summary and whether any part failed (a Stripe or rail error, or an
    exception), so the command can exit non-zero and say so."""
    parts = []
    failed = False
    payments = _payments_reconcile()
    if payments is None:
        parts.append("payments: not available yet")
    else:
        try:
            run = payments()
        except (OperationalError, InterfaceError):
            raise  # the database is away: nothing else can run either (the task retries)
        except Exception as exc:  # the payout side must still run
            log.exception("payment reconciliation failed")
            parts.append(f"payments: FAILED ({exc})")
            failed = True
        else:
            parts.append("payments: " + _describe(run))
            failed = failed or getattr(run, "status", "") == "failed"
    try:
        outcome = payouts_reconcile()
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        log.exception("payout reconciliation failed")
        parts.append(f"payouts: FAILED ({exc})")
        failed = True
    else:
        parts.append(outcome.summary)
        failed = failed or (outcome.run is not None and outcome.run.status == "failed")
    return "reconcile: " + "; ".join(parts), failed


def reconcile_all() -> str:
    """The one-line summary of a run (Celery's task result)."""
    summary, failed = reconcile_all_checked()
    if failed:
        log.error("%s", summary)
    return summary
