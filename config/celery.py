import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("applause")
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
