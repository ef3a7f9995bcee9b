"""Celery beat's scheduler: django-celery-beat's database scheduler, kept alive through a
database outage.

The stock scheduler already survives a failed "did the schedule change?" check and a failed
save of the last-run times, but a full re-read of the schedule (every 5 minutes) that meets a
dead database raises out of ``tick`` and ends the beat process: nothing would be scheduled
again until someone restarted it. Here the tick logs one line and tries again shortly with
the schedule it already holds; due entries are sent as soon as the database answers.
"""

import logging

from django.db import close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler as StockDatabaseScheduler

from config.celery import DATABASE_ERRORS

logger = logging.getLogger(__name__)


class DatabaseScheduler(StockDatabaseScheduler):
    outage_retry_seconds = 5.0

    def tick(self, *args, **kwargs):
        try:
            return super().tick(*args, **kwargs)
        except DATABASE_ERRORS as exc:
            logger.warning(
                "beat: database unavailable (%s), keeping the schedule; trying again in %.0f s",
                type(exc).__name__,
                self.outage_retry_seconds,
            )
            close_old_connections()  # a dropped connection is replaced on the next tick
            return self.outage_retry_seconds
