"""Regenerate ``docs/admin-dashboard.png`` (a manual tool, not part of the app or the tests).

    SECRET_KEY=x scripts/with_services.sh .venv/bin/python scripts/admin_screenshot.py

On the throwaway services: migrate, ``seed_demo``, add 30 days of demo history (recharges
through localstripe and gifts through ``gift_send``, then backdated in this throwaway database
only), sign in to /admin/ as the demo ``staff`` user with its demo TOTP code and take a
1280-pixel-wide screenshot of the dashboard.
"""

import os
import random
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DEBUG"] = "1"
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from scripts/: the project's apps are one up
OUTPUT = ROOT / "docs" / "admin-dashboard.png"


def _history() -> None:
    from datetime import date

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from gifts.models import Gift
    from gifts.services import gift_send
    from wallets.models import Discrepancy, LedgerTransaction
    from wallets.services import recharge_create

    rng = random.Random(7)  # noqa: S311 (a reproducible picture, not a secret)
    User = get_user_model()
    fans = []
    for i in range(24):
        fan, _ = User.objects.get_or_create(
            username=f"fan{i:02d}",
            defaults={"email": f"fan{i:02d}@example.com", "date_of_birth": date(1995, 1, 1)},
        )
        fans.append(fan)
    gifts = list(Gift.objects.filter(is_active=True).values_list("slug", "coins"))
    now = timezone.now()
    moves: list[tuple[str, int, datetime]] = []  # (what, pk, when)
    for days_ago in range(29, -1, -1):
        day = now - timedelta(days=days_ago)
        busy = 1 + (days_ago % 7 in (0, 1)) + (30 - days_ago) / 20
        for _ in range(int(rng.uniform(2, 5) * busy)):
            fan = rng.choice(fans)
            currency = rng.choices(["USD", "EUR", "GBP"], weights=[6, 3, 2])[0]
            coins = rng.choice([100, 300, 700, 1400, 3500])
            recharge = recharge_create(
                user=fan, currency=currency, coins=coins, payment_method="pm_card_visa"
            )
            at = day.replace(hour=rng.randint(8, 22), minute=rng.randint(0, 59))
            moves.append(("recharge", recharge.pk, min(at, now)))
        for n in range(int(rng.uniform(6, 14) * busy)):
            fan = rng.choice(fans)
            slug, _price = rng.choice([g for g in gifts if g[1] <= 100])
            try:
                event = gift_send(
                    sender=fan,
                    creator_handle="demo",
                    gift_slug=slug,
                    quantity=rng.randint(1, 5),
                    client_key=f"shot-{days_ago}-{n}-{fan.pk}",
                )
            except Exception:  # noqa: S112 - a fan out of coins just sits this one out
                continue
            at = day.replace(hour=rng.randint(8, 23), minute=rng.randint(0, 59))
            moves.append(("gift", event.pk, min(at, now)))
    # Backdate in this throwaway database only (triggers off for this session).
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        for what, pk, at in moves:
            if what == "recharge":
                cursor.execute(
                    "UPDATE wallets_recharge SET created_at = %s, succeeded_at = %s WHERE id = %s "
                    "RETURNING payment_intent",
                    [at, at, pk],
                )
                key = f"recharge:{cursor.fetchone()[0]}"
                tx = LedgerTransaction.objects.get(idempotency_key=key).pk
            else:
                cursor.execute(
                    "UPDATE gifts_giftevent SET created_at = %s WHERE id = %s RETURNING transaction_id",
                    [at, pk],
                )
                tx = cursor.fetchone()[0]
            cursor.execute(
                "UPDATE wallets_ledgertransaction SET created_at = %s WHERE id = %s", [at, tx]
            )
            cursor.execute(
                "UPDATE wallets_entry SET created_at = %s WHERE transaction_id = %s", [at, tx]
            )
        cursor.execute("SET session_replication_role = origin")
    Discrepancy.objects.get_or_create(
        kind="amount_mismatch",
        object_type="payment_intent",
        object_id="pi_demo_mismatch",
        defaults={"expected": "USD 9.99", "found": "USD 99.00"},
    )
    staff = User.objects.get(username="staff")
    from staff.services import staff_wallet_freeze

    staff_wallet_freeze(actor=staff, user=fans[3], reason="chargeback under review")
    try:
        from payouts.services import payout_batch_run
        from payouts.tests.factories import make_payout_creator

        make_payout_creator(260_000)
        make_payout_creator(12_000)
        make_payout_creator(40_000)
        payout_batch_run(actor=staff)
    except Exception as exc:  # payouts are optional for the picture
        print("payouts skipped:", exc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_demo")
    _history()
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        from playwright.sync_api import sync_playwright

        device = TOTPDevice.objects.get(user__username="staff", confirmed=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=os.environ["CHROMIUM_PATH"],
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{base}/admin/")
            page.fill("#id_username", "staff")
            page.fill("#id_password", "applause-demo")
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/admin/otp/**")
            code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
            page.fill("#id_otp_token", f"{code:06d}")
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/admin/")
            page.screenshot(path=str(OUTPUT), full_page=False)
            browser.close()
        print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size // 1024} KB)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    main()
