"""Statements for payouts made before statement lines existed, in payout order (the same FIFO
allocation the batch now runs when it creates a payout)."""

from django.db import migrations


def backfill(apps, schema_editor):
    from payouts.statements import statement_allocate
    from payouts.models import Payout

    done = set(
        apps.get_model("payouts", "PayoutStatementLine")
        .objects.values_list("payout_id", flat=True)
        .distinct()
    )
    for payout in Payout.objects.select_related("creator").order_by("id"):
        if payout.pk not in done:
            statement_allocate(payout=payout)


class Migration(migrations.Migration):
    dependencies = [("payouts", "0003_statement_lines")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
