"""``accounts_idempotencyrecord.user_id`` loses its own index: the unique (user, key) index
leads with it (issue #15: one index insert fewer per HTTP gift). The foreign key stays as it
is (a plain ``AlterField`` would drop and re-validate it)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def forwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(
        f"DROP INDEX {'CONCURRENTLY' if postgres else ''} "
        "IF EXISTS accounts_idempotencyrecord_user_id_00f7187b"
    )


def backwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(
        f"CREATE INDEX {'CONCURRENTLY' if postgres else ''} IF NOT EXISTS "
        "accounts_idempotencyrecord_user_id_00f7187b ON accounts_idempotencyrecord (user_id)"
    )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY

    dependencies = [
        ("accounts", "0002_auditlog_from_staff"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="idempotencyrecord",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
