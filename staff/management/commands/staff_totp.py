"""Staff two-factor from the command line.

``staff_totp USERNAME`` prints the current code of the demo device (``DEBUG`` only);
``staff_totp --enrol-link USERNAME`` issues a one-time link with which the staff member sets
up their first device (any environment; it is how the first superuser gets one).
"""

import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.errors import DomainError
from staff import otp
from staff.demo import DEMO_DEVICE_NAME


class Command(BaseCommand):
    help = (
        "Print the current 2FA code of USERNAME's demo TOTP device (DEBUG only), or with "
        "--enrol-link issue a one-time link (valid ENROL_LINK_TTL_HOURS) to set up 2FA."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--enrol-link",
            action="store_true",
            help="issue a one-time 2FA enrolment link for USERNAME (audited)",
        )
        parser.add_argument(
            "--base-url",
            default="",
            help="the site's address for the link, e.g. https://applause.example "
            "(default: http://127.0.0.1:$PORT with DEBUG on, else https://<first ALLOWED_HOSTS>)",
        )

    def handle(self, *args, username, enrol_link, base_url, **options):
        if enrol_link:
            self._enrol_link(username, base_url)
            return
        if not settings.DEBUG:
            raise CommandError("staff_totp only works with DEBUG on (it reads a demo key).")
        device = TOTPDevice.objects.filter(
            user__username=username, name=DEMO_DEVICE_NAME, confirmed=True
        ).first()
        if device is None:
            raise CommandError(f"{username} has no demo TOTP device (run seed_demo first).")
        now = int(time.time())
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        left = device.step - (now - device.t0) % device.step
        self.stdout.write(f"{code:0{device.digits}d}  (valid for {left} more seconds)")

    def _enrol_link(self, username: str, base_url: str) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        try:
            link, secret = otp.enrolment_link_issue(
                user=user, actor=None, reason="2FA enrolment link issued on the command line"
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        base = (base_url or _default_base()).rstrip("/")
        self.stdout.write(
            f"{base}{otp.enrolment_link_path(secret)}  "
            f"(for {user.get_username()}, works once, until {link.expires_at:%Y-%m-%d %H:%M} UTC)"
        )


def _default_base() -> str:
    import os

    if settings.DEBUG:
        return f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    host = next((h for h in settings.ALLOWED_HOSTS if h and h != "*"), "localhost").lstrip(".")
    return f"https://{host}"
