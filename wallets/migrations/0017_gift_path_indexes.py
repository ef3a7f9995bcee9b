"""Fewer index inserts per gift (issue #15), without rebuilding foreign keys or locking the
ledger: the state changes are Django's, the database side is written out.

- ``wallets_entry.account_id`` loses its own index: ``entry_account_newest`` and
  ``entry_account_created_amount`` lead with the account (four entries per gift: four index
  inserts fewer). A plain ``AlterField`` would drop and re-validate the foreign key.
- ``wallets_ledgertransaction.reference`` keeps one plain btree, renamed
  ``ledgertx_reference``; its ``varchar_pattern_ops`` twin goes (nothing looks references up
  by prefix: the admin's search is ``icontains``, which neither index serves).
- ``reverses_id`` is indexed only where set (``ledgertx_reverses``): every journal row had a
  NULL entry in the old index. Built ``CONCURRENTLY`` on PostgreSQL (a rolling deploy keeps
  writing), hence a non-atomic migration.
- ``wallets_account`` keeps a fifth of each page free (``fillfactor``) so that a balance
  update stays on its page: a HOT update, no index entry written (no index holds the balance).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q

FORWARDS = [
    "DROP INDEX {concurrently} IF EXISTS wallets_entry_account_id_8b96ee76",
    "DROP INDEX {concurrently} IF EXISTS wallets_ledgertransaction_reference_216727bb_like",
    "ALTER INDEX IF EXISTS wallets_ledgertransaction_reference_216727bb "
    "RENAME TO ledgertx_reference",
    "CREATE INDEX {concurrently} IF NOT EXISTS ledgertx_reverses "
    "ON wallets_ledgertransaction (reverses_id) WHERE reverses_id IS NOT NULL",
    "DROP INDEX {concurrently} IF EXISTS wallets_ledgertransaction_reverses_id_1e574812",
]
BACKWARDS = [
    "CREATE INDEX {concurrently} IF NOT EXISTS wallets_ledgertransaction_reverses_id_1e574812 "
    "ON wallets_ledgertransaction (reverses_id)",
    "DROP INDEX {concurrently} IF EXISTS ledgertx_reverses",
    "ALTER INDEX IF EXISTS ledgertx_reference "
    "RENAME TO wallets_ledgertransaction_reference_216727bb",
    "CREATE INDEX {concurrently} IF NOT EXISTS wallets_ledgertransaction_reference_216727bb_like "
    "ON wallets_ledgertransaction (reference varchar_pattern_ops)",
    "CREATE INDEX {concurrently} IF NOT EXISTS wallets_entry_account_id_8b96ee76 "
    "ON wallets_entry (account_id)",
]


def _run(statements, schema_editor, fillfactor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for sql in statements:
        if not postgres:
            if "varchar_pattern_ops" in sql:
                continue
            if sql.startswith("ALTER INDEX"):  # SQLite cannot rename an index: rebuild it
                old, new = sql.split(" IF EXISTS ")[1].split(" RENAME TO ")
                schema_editor.execute(f"DROP INDEX IF EXISTS {old}")
                schema_editor.execute(
                    f"CREATE INDEX IF NOT EXISTS {new} ON wallets_ledgertransaction (reference)"
                )
                continue
        schema_editor.execute(sql.format(concurrently="CONCURRENTLY" if postgres else ""))
    if postgres:
        schema_editor.execute(f"ALTER TABLE wallets_account SET (fillfactor = {fillfactor})")


def forwards(apps, schema_editor):
    _run(FORWARDS, schema_editor, 80)


def backwards(apps, schema_editor):
    _run(BACKWARDS, schema_editor, 100)


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY

    dependencies = [
        ("wallets", "0016_self_refund_phases"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="entry",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="entries",
                        to="wallets.account",
                    ),
                ),
                migrations.AlterField(
                    model_name="ledgertransaction",
                    name="reference",
                    field=models.CharField(blank=True, max_length=100),
                ),
                migrations.AlterField(
                    model_name="ledgertransaction",
                    name="reverses",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reversals",
                        to="wallets.ledgertransaction",
                    ),
                ),
                migrations.AddIndex(
                    model_name="ledgertransaction",
                    index=models.Index(fields=["reference"], name="ledgertx_reference"),
                ),
                migrations.AddIndex(
                    model_name="ledgertransaction",
                    index=models.Index(
                        condition=Q(reverses__isnull=False),
                        fields=["reverses"],
                        name="ledgertx_reverses",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
