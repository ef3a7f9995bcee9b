"""The audit log moves from the staff app (the top) to accounts (the bottom), so every app's
services can write their own rows. State only: the table (``staff_auditlog``), its rows, its
indexes and its append-only trigger (staff migration 0002) stay exactly as they are."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        # The table exists (with its trigger) before this app claims it.
        ("staff", "0005_adjustment_rolling_limit"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditLog",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("action", models.CharField(max_length=64)),
                        ("object_type", models.CharField(blank=True, max_length=100)),
                        ("object_id", models.CharField(blank=True, max_length=64)),
                        ("object_repr", models.CharField(blank=True, max_length=200)),
                        ("before", models.JSONField(blank=True, null=True)),
                        ("after", models.JSONField(blank=True, null=True)),
                        ("reason", models.TextField(blank=True)),
                        ("ip", models.GenericIPAddressField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "audit log entry",
                        "verbose_name_plural": "audit log",
                        "db_table": "staff_auditlog",
                        "ordering": ["-id"],
                        "indexes": [
                            models.Index(
                                fields=["object_type", "object_id"], name="auditlog_object"
                            ),
                            models.Index(
                                fields=["actor", "-created_at"], name="auditlog_actor_recent"
                            ),
                            models.Index(
                                fields=["action", "-created_at"], name="auditlog_action_recent"
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
