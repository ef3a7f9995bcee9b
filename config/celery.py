import os

from celery import Celery, Task
from celery.signals import beat_init, worker_init
from django.db import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# A task that fails because PostgreSQL is down, restarting or dropped its connection is
# retried with backoff (every task is safe to run twice). Tasks that name their own
# ``autoretry_for`` add these to it.
DATABASE_ERRORS = (OperationalError, InterfaceError)


class DatabaseRetryTask(Task):
    """The base of every task: retried on database outages, 2 s doubling up to a minute
    (jittered), for about half an hour before it gives up; beat's next run takes over then."""

    autoretry_for = DATABASE_ERRORS
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 30

    def retry(self, *args, **kwargs):
        if isinstance(kwargs.get("exc"), DATABASE_ERRORS):
            # Drop the dead connection now: the retry (in this process too) starts afresh.
            from django.db import close_old_connections

            close_old_connections()
        return super().retry(*args, **kwargs)


app = Celery("applause", task_cls=DatabaseRetryTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def refuse_unsafe_production(**kwargs) -> None:
    """``make worker`` / ``make beat`` refuse the public Stripe defaults like the web server.

    Celery logs and swallows an exception raised by a signal handler, so exit instead."""
    from django.core.exceptions import ImproperlyConfigured

    from wallets.checks import refuse_unsafe_production as check

    try:
        check()
    except ImproperlyConfigured as exc:
        import sys

        print(exc, file=sys.stderr)
        raise SystemExit(1) from exc
