"""Seed the weekly payout batch and the hourly reconciliation as django-celery-beat rows, so
staff can see and change them in the admin (Periodic tasks)."""

from django.db import migrations

TASKS = [
    # name, task, crontab (minute, hour, day_of_week)
    ("payout-batch", "payouts.tasks.payout_batch_task", ("0", "6", "1")),
    ("reconcile", "payouts.tasks.reconcile_task", ("15", "*", "*")),
]


def seed(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, (minute, hour, day_of_week) in TASKS:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.create(name=name, task=task, crontab=schedule, enabled=True)


class Migration(migrations.Migration):
    dependencies = [
        ("payouts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
