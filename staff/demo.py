"""Demo 2FA for ``make run`` (development only): the demo ``staff`` user gets a TOTP device
with a fixed, published key, so the operator can sign in to /admin/ without a phone."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

DEMO_DEVICE_NAME = "Demo device (fixed key, development only)"
# A published key: anyone can compute its codes. Never seeded with DEBUG off.
DEMO_TOTP_KEY = "3132333435363738393031323334353637383930"  # RFC 6238's test secret


def seed(out) -> None:
    if not settings.DEBUG and not getattr(settings, "TESTING", False):
        out.append("staff: demo TOTP device skipped (DEBUG is off)")
        return
    staff = get_user_model().objects.filter(username="staff").first()
    if staff is None:
        return
    TOTPDevice.objects.get_or_create(
        user=staff,
        name=DEMO_DEVICE_NAME,
        defaults={"key": DEMO_TOTP_KEY, "confirmed": True},
    )
    out.append(
        "admin 2FA for 'staff': get the current code with "
        "`DEBUG=1 .venv/bin/python manage.py staff_totp staff` (demo key, development only)"
    )
