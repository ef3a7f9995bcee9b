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
    # The real models are newer than this migration: load only the columns that exist here.
    historical = apps.get_model("payouts", "Payout")._meta
    creator = apps.get_model("creators", "Creator")._meta
    columns = [f.name for f in historical.concrete_fields] + [
        f"creator__{f.name}" for f in creator.concrete_fields
    ]
    for payout in Payout.objects.select_related("creator").only(*columns).order_by("id"):
        if payout.pk not in done:
            statement_allocate(payout=payout)


class Migration(migrations.Migration):
    dependencies = [("payouts", "0003_statement_lines")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
