from django.db import migrations, models


class Migration(migrations.Migration):
    # Apart from 0006 (which moves the rows first): one transaction each.
    dependencies = [
        ("wallets", "0006_recharge_refunds_in_purchase_currency"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="recharge",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("amount_refunded_currency", models.F("price_currency")),
                    ("amount_refunded__gte", 0),
                    ("amount_refunded__lte", models.F("price")),
                ),
                name="recharge_amount_refunded_in_purchase_currency",
            ),
        ),
    ]
