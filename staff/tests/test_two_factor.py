import re

import pytest
from django.test import Client

from staff.models import AuditLog
from staff.tests.factories import PASSWORD, current_code, device_of, staff_user

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/staff/wallet/",
    "/admin/staff/auditlog/",
    "/admin/staff/adjustmentrequest/",
    "/admin/wallets/ledgertransaction/",
    "/admin/accounts/user/",
    "/admin/password_change/",
    "/admin/jsi18n/",
]


def _password_step(client: Client, user) -> str:
    response = client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return response["Location"]


@pytest.mark.parametrize("with_device", [True, False])
def test_password_alone_opens_no_admin_page(with_device):
    user = staff_user("finance", device=with_device, is_superuser=True)
    client = Client()
    second_step = _password_step(client, user)
    assert second_step.startswith("/admin/otp/")
    for url in ADMIN_PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_portal_password_session_still_needs_the_code():
    user = staff_user("finance", is_superuser=True)
    client = Client()
    client.force_login(
        user, backend="django.contrib.auth.backends.ModelBackend"
    )  # e.g. signed in on the portal with a password
    for url in ADMIN_PAGES:
        assert client.get(url).status_code == 302, url
    response = client.get("/admin/login/?next=/admin/")
    assert response["Location"].startswith("/admin/otp/")


def test_code_after_password_opens_the_admin_and_is_audited():
    user = staff_user("finance")
    client = Client()
    assert _password_step(client, user) == "/admin/otp/"
    response = client.post("/admin/otp/", {"otp_token": current_code(device_of(user))})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert AuditLog.objects.filter(actor=user, action="admin_login").count() == 1


def test_wrong_code_is_refused_and_audited():
    user = staff_user("finance")
    client = Client()
    _password_step(client, user)
    response = client.post("/admin/otp/", {"otp_token": "000000"})
    assert response.status_code == 200
    assert b"not right" in response.content
    assert client.get("/admin/").status_code == 302
    assert AuditLog.objects.filter(actor=user, action="admin_login_failed").exists()


def test_otp_step_without_password_step_goes_back_to_login():
    staff_user("finance")
    response = Client().post("/admin/otp/", {"otp_token": "123456"})
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_device_is_walked_through_enrolment(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the wrong code below would delay the right one
    user = staff_user("support", device=False)
    client = Client()
    assert _password_step(client, user) == "/admin/otp/enrol/"
    page = client.get("/admin/otp/enrol/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and re.search(r"otp-secret\">[A-Z2-7]{16,}<", html)
    device = device_of(user)
    assert not device.confirmed
    # A wrong code does not enrol.
    client.post("/admin/otp/enrol/", {"otp_token": "000000"})
    device.refresh_from_db()
    assert not device.confirmed and client.get("/admin/").status_code == 302

    response = client.post("/admin/otp/enrol/", {"otp_token": current_code(device)})
    assert response["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200
    actions = set(AuditLog.objects.filter(actor=user).values_list("action", flat=True))
    assert {"otp_enrol", "admin_login"} <= actions


def test_enrolled_user_cannot_enrol_a_second_device_with_a_password():
    user = staff_user("finance")
    client = Client()
    _password_step(client, user)
    response = client.get("/admin/otp/enrol/")
    assert response["Location"].startswith("/admin/otp/")
    assert response["Location"] != "/admin/otp/enrol/"


def test_non_staff_cannot_pass_the_password_step():
    from accounts.tests.factories import UserFactory

    user = UserFactory()
    client = Client()
    response = client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200  # the form again, with an error
    assert client.get("/admin/otp/")["Location"].startswith("/admin/login/")


def test_open_redirect_is_refused():
    user = staff_user("finance")
    client = Client()
    client.post(
        "/admin/login/?next=https://evil.example/",
        {"username": user.username, "password": PASSWORD, "next": "https://evil.example/"},
    )
    response = client.post(
        "/admin/otp/?next=https://evil.example/",
        {"otp_token": current_code(device_of(user)), "next": "https://evil.example/"},
    )
    assert response["Location"] == "/admin/"
