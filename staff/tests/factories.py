"""Staff users with roles and known TOTP devices, and a logged-in (2FA-verified) client."""

import time

from django.contrib.auth.models import Group
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests.factories import PASSWORD, UserFactory
from staff import otp


def staff_user(role: str | None = None, *, device: bool = True, **fields):
    user = UserFactory.create(is_staff=True, **fields)
    if role:
        user.groups.add(Group.objects.get(name=role))
    if device:
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


def device_of(user) -> TOTPDevice:
    return TOTPDevice.objects.filter(user=user).order_by("-id").first()


def current_code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{code:0{device.digits}d}"


def next_code(device: TOTPDevice) -> str:
    """A code the device still accepts after a login in the same 30 seconds (a code works
    once): the one for the step after the last used one."""
    device.refresh_from_db()
    step_now = (int(time.time()) - device.t0) // device.step
    drift = max(device.last_t + 1 - step_now, 0)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift)
    return f"{code:0{device.digits}d}"


def verified_client(user) -> Client:
    """A client signed in with password *and* OTP (the session the 2FA views produce)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device_of(user).persistent_id
    session[otp.ADMIN_SESSION_STARTED] = session[otp.ADMIN_SESSION_SEEN] = int(time.time())
    session.save()
    return client


__all__ = ["PASSWORD", "current_code", "device_of", "next_code", "staff_user", "verified_client"]
