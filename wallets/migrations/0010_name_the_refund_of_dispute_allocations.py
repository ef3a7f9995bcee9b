from django.db import migrations


def name_the_refund_of_dispute_allocations(apps, schema_editor):
    """Allocations booked before they named their clawback: a dispute's clawback is the
    RechargeRefund with the dispute's id and source "dispute"."""
    ChargebackAllocation = apps.get_model("wallets", "ChargebackAllocation")
    RechargeRefund = apps.get_model("wallets", "RechargeRefund")
    pending = ChargebackAllocation.objects.filter(refund__isnull=True, dispute__isnull=False)
    for dispute_pk, dispute_id in pending.values_list(
        "dispute_id", "dispute__dispute_id"
    ).distinct():
        refund = RechargeRefund.objects.filter(stripe_id=dispute_id, source="dispute").first()
        if refund is not None:
            pending.filter(dispute_id=dispute_pk).update(refund=refund)


class Migration(migrations.Migration):
    # Apart from 0009: updating a foreign key queues deferred checks, which must not meet
    # 0009's ALTER TABLE in one transaction.
    dependencies = [("wallets", "0009_clawbacks_of_refunds")]

    operations = [
        migrations.RunPython(name_the_refund_of_dispute_allocations, migrations.RunPython.noop),
    ]
