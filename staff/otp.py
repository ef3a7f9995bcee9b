"""Two-factor sign-in for the admin: password first, then a TOTP code (or enrolment).

The password step does not log anyone in: it only remembers, for a few minutes, whose code we
are waiting for. ``auth.login`` and ``django_otp.login`` happen together once the code is
right, so a session is never authenticated for staff pages by a password alone.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.errors import DomainError

if TYPE_CHECKING:
    from accounts.models import User


PENDING_USER = "staff_otp_user"
PENDING_BACKEND = "staff_otp_backend"
PENDING_AT = "staff_otp_at"
PENDING_TTL_SECONDS = 300
# A verified admin session: when it started and when it was last used (unix seconds).
ADMIN_SESSION_STARTED = "staff_admin_started"
ADMIN_SESSION_SEEN = "staff_admin_seen"
SEEN_WRITE_EVERY_SECONDS = 30  # refresh "last used" at most this often (fewer session writes)
ENROL_DEVICE_NAME = "Authenticator app"


def pending_set(request, user: User) -> None:
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


def confirmed_devices(user: User) -> list:
    return [
        *TOTPDevice.objects.filter(user=user, confirmed=True),
        *StaticDevice.objects.filter(user=user, confirmed=True),
    ]


def has_confirmed_device(user: User) -> bool:
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or StaticDevice.objects.filter(user=user, confirmed=True).exists()
    )


def token_verify(user: User, token: str):
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


def enrolment_device(user: User) -> TOTPDevice:
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


# --- Enrolment links: a password alone never enrols the first device ---------------------------

ENROL_LINK_SESSION = "staff_otp_enrol_link"


class EnrolmentLinkRefused(DomainError):
    code = "enrolment_link_refused"
    status = 400
    default_message = "No enrolment link can be issued for this account."


def _link_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def enrolment_link_issue(
    *, user: User, actor: User | None, request=None, reason: str = ""
) -> tuple[Any, str]:
    """A new one-time enrolment link for ``user``; returns (link, secret for the URL).

    ``actor`` is the superuser issuing it (None on the command line). Older unused links of
    the user stop working. Audited as ``otp_enrol_link``.
    """
    from accounts.audit import audit_record
    from staff.models import EnrolmentLink

    if actor is not None and not actor.is_superuser:
        raise PermissionDenied("Only a superuser issues enrolment links.")
    if not (user.is_active and user.is_staff):
        raise EnrolmentLinkRefused(f"{user.get_username()} is not an active staff member.")
    if has_confirmed_device(user):
        raise EnrolmentLinkRefused(
            f"{user.get_username()} already has a two-factor device: remove it first "
            "(OTP TOTP › TOTP devices) if the phone is lost."
        )
    now = timezone.now()
    EnrolmentLink.objects.filter(user=user, used_at=None, revoked_at=None).update(revoked_at=now)
    secret = secrets.token_urlsafe(32)
    link = EnrolmentLink.objects.create(
        user=user,
        digest=_link_digest(secret),
        issued_by=actor,
        created_at=now,
        expires_at=now + timedelta(hours=settings.ENROL_LINK_TTL_HOURS),
    )
    audit_record(
        actor=actor,
        action="otp_enrol_link",
        obj=user,
        after={"link": link.pk, "expires_at": link.expires_at},
        reason=reason or "2FA enrolment link issued",
        request=request,
    )
    return link, secret


def enrolment_link_path(secret: str) -> str:
    return reverse("admin:otp_enrol_link", kwargs={"secret": secret})


def enrolment_link_find(secret: str):
    """The usable link with this secret, or None (unknown, used, replaced or expired)."""
    from staff.models import EnrolmentLink

    if not secret or len(secret) > 100:
        return None
    link = EnrolmentLink.objects.select_related("user").filter(digest=_link_digest(secret)).first()
    if link is None or not link.is_usable:
        return None
    if not (link.user.is_active and link.user.is_staff):
        return None
    return link


def enrolment_link_for_session(request, user: User):
    """The usable link this browser opened for ``user``, or None."""
    from staff.models import EnrolmentLink

    link_id = request.session.get(ENROL_LINK_SESSION)
    if link_id is None:
        return None
    link = EnrolmentLink.objects.filter(pk=link_id, user=user).first()
    if link is None or not link.is_usable:
        return None
    return link


@transaction.atomic
def enrolment_confirm(*, link, device: TOTPDevice) -> bool:
    """Confirm ``device`` with ``link``, once: False when the link was used (or ended) since."""
    from staff.models import EnrolmentLink

    locked = EnrolmentLink.objects.select_for_update().get(pk=link.pk)
    if not locked.is_usable or locked.user_id != device.user_id:
        return False
    locked.used_at = timezone.now()
    locked.save(update_fields=["used_at"])
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return True
