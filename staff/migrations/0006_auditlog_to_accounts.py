"""The audit log's rows now belong to ``accounts.AuditLog`` (accounts migration 0002); the staff
console keeps a proxy of it under the same name, address and permissions. State only: nothing
in the database changes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0005_adjustment_rolling_limit"),
        ("accounts", "0002_auditlog_from_staff"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditLog")],
            database_operations=[],
        ),
        migrations.CreateModel(
            name="AuditLog",
            fields=[],
            options={
                "verbose_name": "audit log entry",
                "verbose_name_plural": "audit log",
                "ordering": ["-id"],
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("accounts.auditlog",),
        ),
    ]
