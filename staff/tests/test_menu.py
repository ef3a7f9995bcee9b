"""Issue 21 item 15: the admin's menu in words staff understand, money first."""

import pytest

from staff.tests.factories import staff_user, verified_client

pytestmark = pytest.mark.django_db


def test_admin_menu_uses_staff_names_in_the_order_staff_work():
    admin = staff_user(None, is_superuser=True)
    page = verified_client(admin).get("/admin/").content.decode()
    for raw in ("OTP_STATIC", "OTP_TOTP", "Otp_Static", "Periodic Tasks", "Django_Celery_Beat"):
        assert f">{raw}<" not in page
    assert "Wallets, payments and the ledger" in page
    assert "Scheduled jobs" in page
    labels = ["wallets", "payouts", "gifts", "django_celery_beat", "otp_totp"]
    positions = [page.find(f'class="app-{label} module') for label in labels]
    assert all(p >= 0 for p in positions), dict(zip(labels, positions, strict=True))
    assert positions == sorted(positions)
