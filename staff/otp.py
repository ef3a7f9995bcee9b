"""Two-factor sign-in for the admin: password first, then a TOTP code (or enrolment).

The password step does not log anyone in: it only remembers, for a few minutes, whose code we
are waiting for. ``auth.login`` and ``django_otp.login`` happen together once the code is
right, so a session is never authenticated for staff pages by a password alone.
"""

from __future__ import annotations

import base64
import re
import time

import qrcode
import qrcode.image.svg
from django.contrib.auth import get_user_model
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

PENDING_USER = "staff_otp_user"
PENDING_BACKEND = "staff_otp_backend"
PENDING_AT = "staff_otp_at"
PENDING_TTL_SECONDS = 300
# A verified admin session: when it started and when it was last used (unix seconds).
ADMIN_SESSION_STARTED = "staff_admin_started"
ADMIN_SESSION_SEEN = "staff_admin_seen"
SEEN_WRITE_EVERY_SECONDS = 30  # refresh "last used" at most this often (fewer session writes)
ENROL_DEVICE_NAME = "Authenticator app"


def pending_set(request, user) -> None:
    request.session[PENDING_USER] = user.pk
    request.session[PENDING_BACKEND] = getattr(
        user, "backend", "django.contrib.auth.backends.ModelBackend"
    )
    request.session[PENDING_AT] = int(time.time())


def pending_clear(request) -> None:
    for key in (PENDING_USER, PENDING_BACKEND, PENDING_AT):
        request.session.pop(key, None)


def pending_user(request):
    """The staff user who passed the password step in the last few minutes, or None."""
    user_id = request.session.get(PENDING_USER)
    started = request.session.get(PENDING_AT, 0)
    if user_id is None or time.time() - started > PENDING_TTL_SECONDS:
        pending_clear(request)
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True, is_staff=True).first()
    if user is not None:
        user.backend = request.session.get(PENDING_BACKEND)
    return user


def admin_session_start(request) -> None:
    now = int(time.time())
    request.session[ADMIN_SESSION_STARTED] = now
    request.session[ADMIN_SESSION_SEEN] = now


def admin_session_fresh(request) -> bool:
    """True while this verified admin session is younger than ``ADMIN_SESSION_MAX_HOURS`` and
    was used in the last ``ADMIN_SESSION_IDLE_MINUTES``; marks it used."""
    from django.conf import settings

    started = request.session.get(ADMIN_SESSION_STARTED)
    seen = request.session.get(ADMIN_SESSION_SEEN)
    now = int(time.time())
    if not isinstance(started, int) or not isinstance(seen, int):
        return False  # verified some other way than our sign-in: sign in again
    if now - started > settings.ADMIN_SESSION_MAX_HOURS * 3600:
        return False
    if now - seen > settings.ADMIN_SESSION_IDLE_MINUTES * 60:
        return False
    if now - seen >= SEEN_WRITE_EVERY_SECONDS:
        request.session[ADMIN_SESSION_SEEN] = now
    return True


def confirmed_devices(user) -> list:
    return [
        *TOTPDevice.objects.filter(user=user, confirmed=True),
        *StaticDevice.objects.filter(user=user, confirmed=True),
    ]


def has_confirmed_device(user) -> bool:
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or StaticDevice.objects.filter(user=user, confirmed=True).exists()
    )


def token_verify(user, token: str):
    """The confirmed device that accepts ``token`` (throttled per device by django-otp)."""
    token = re.sub(r"\s+", "", token or "")
    if not token:
        return None
    with transaction.atomic():
        for device in confirmed_devices(user):
            locked = type(device).objects.select_for_update().get(pk=device.pk)
            if locked.verify_token(token):
                return locked
    return None


def enrolment_device(user) -> TOTPDevice:
    """The unconfirmed TOTP device a user is enrolling (one at a time)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=ENROL_DEVICE_NAME, confirmed=False)
    return device


def device_secret_base32(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def qr_svg(data: str, size_px: int = 220) -> str:
    """An inline SVG QR code (white background: readable in the admin's dark mode too)."""
    image = qrcode.make(
        data,
        image_factory=qrcode.image.svg.SvgPathFillImage,
        box_size=10,
        border=2,
    )
    svg = image.to_string(encoding="unicode")
    svg = re.sub(
        r'width="[^"]+" height="[^"]+"', f'width="{size_px}" height="{size_px}"', svg, count=1
    )
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator" ', 1)
