import io
import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from staff import otp
from staff.models import AuditLog, EnrolmentLink
from staff.tests.factories import (
    PASSWORD,
    current_code,
    device_of,
    next_code,
    staff_user,
    verified_client,
)

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
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
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


def _open_link(client: Client, user, actor=None) -> str:
    """Issue an enrolment link for ``user`` and open it in ``client``; returns its path."""
    _link, secret = otp.enrolment_link_issue(user=user, actor=actor)
    path = otp.enrolment_link_path(secret)
    response = client.get(path)
    assert response.status_code == 302, response.content
    return path


def test_staff_with_a_link_is_walked_through_enrolment(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the wrong code below would delay the right one
    user = staff_user("support", device=False)
    client = Client()
    _open_link(client, user)
    assert _password_step(client, user) == "/admin/otp/enrol/"
    page = client.get("/admin/otp/enrol/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html
    assert re.search(r"otp-secret\">[A-Z2-7]{16,}<", html)
    device = device_of(user)
    assert not device.confirmed
    # A wrong code does not enrol.
    client.post("/admin/otp/enrol/", {"otp_token": "000000"})
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/admin/").status_code == 302

    response = client.post("/admin/otp/enrol/", {"otp_token": current_code(device)})
    assert response["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200
    actions = set(AuditLog.objects.filter(actor=user).values_list("action", flat=True))
    assert {"otp_enrol", "admin_login"} <= actions
    assert EnrolmentLink.objects.get(user=user).used_at is not None


def test_a_password_alone_does_not_enrol_the_first_device():
    user = staff_user("finance", device=False, is_superuser=True)
    client = Client()
    assert _password_step(client, user) == "/admin/otp/enrol/"
    page = client.get("/admin/otp/enrol/")
    assert page.status_code == 403
    html = page.content.decode()
    assert "enrolment link" in html
    assert "staff-qr" not in html
    assert "otp-secret" not in html
    response = client.post("/admin/otp/enrol/", {"otp_token": "123456"})
    assert response.status_code == 403
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert client.get("/admin/").status_code == 302


def test_the_link_can_be_opened_after_the_password_too():
    user = staff_user("finance", device=False)
    client = Client()
    assert _password_step(client, user) == "/admin/otp/enrol/"
    _link, secret = otp.enrolment_link_issue(user=user, actor=None)
    response = client.get(otp.enrolment_link_path(secret))
    assert response["Location"] == "/admin/otp/enrol/"
    assert client.get("/admin/otp/enrol/").status_code == 200


def test_an_enrolment_link_works_once():
    user = staff_user("finance", device=False)
    first, second = Client(), Client()
    path = _open_link(first, user)
    assert second.get(path).status_code == 302  # a second browser opened it too
    _password_step(first, user)
    _password_step(second, user)
    first.get("/admin/otp/enrol/")
    device = device_of(user)
    second.get("/admin/otp/enrol/")  # same unconfirmed device, same QR
    assert (
        first.post("/admin/otp/enrol/", {"otp_token": current_code(device)})["Location"]
        == "/admin/"
    )

    # The link is spent: the other browser is not enrolled by it, nor can it open it again.
    response = second.post("/admin/otp/enrol/", {"otp_token": current_code(device)})
    assert response["Location"].startswith("/admin/otp/")
    assert second.get("/admin/").status_code == 302
    assert Client().get(path).status_code == 404
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1


def test_an_enrolment_link_expires_after_24_hours(settings):
    assert settings.ENROL_LINK_TTL_HOURS == 24
    user = staff_user("finance", device=False)
    link, secret = otp.enrolment_link_issue(user=user, actor=None)
    assert abs((link.expires_at - link.created_at).total_seconds() - 24 * 3600) < 1
    EnrolmentLink.objects.filter(pk=link.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    client = Client()
    response = client.get(otp.enrolment_link_path(secret))
    assert response.status_code == 404
    assert b"does not work" in response.content
    _password_step(client, user)
    assert client.get("/admin/otp/enrol/").status_code == 403


def test_a_link_opened_before_it_expired_stops_working_when_it_expires():
    user = staff_user("finance", device=False)
    client = Client()
    _open_link(client, user)
    _password_step(client, user)
    assert client.get("/admin/otp/enrol/").status_code == 200
    EnrolmentLink.objects.filter(user=user).update(expires_at=timezone.now())
    response = client.post("/admin/otp/enrol/", {"otp_token": current_code(device_of(user))})
    assert response.status_code == 403
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_a_new_link_ends_the_older_one_and_a_link_is_for_one_person():
    user = staff_user("finance", device=False)
    other = staff_user("finance", device=False)
    _old, old_secret = otp.enrolment_link_issue(user=user, actor=None)
    _new, new_secret = otp.enrolment_link_issue(user=user, actor=None)
    assert Client().get(otp.enrolment_link_path(old_secret)).status_code == 404

    # Someone else's link does not let ``other`` enrol.
    client = Client()
    assert client.get(otp.enrolment_link_path(new_secret)).status_code == 302
    _password_step(client, other)
    assert client.get("/admin/otp/enrol/").status_code == 403
    assert Client().get("/admin/otp/enrol/not-a-real-link/").status_code == 404


def test_no_link_for_a_non_staff_user_or_one_who_has_a_device():
    from accounts.tests.factories import UserFactory
    from config.errors import DomainError

    with pytest.raises(DomainError):
        otp.enrolment_link_issue(user=UserFactory(), actor=None)
    with pytest.raises(DomainError):
        otp.enrolment_link_issue(user=staff_user("finance"), actor=None)
    assert not EnrolmentLink.objects.exists()


def test_a_superuser_issues_a_link_from_the_user_list_and_it_is_audited():
    boss = staff_user(is_superuser=True)
    newcomer = staff_user("support", device=False)
    response = verified_client(boss).post(
        "/admin/accounts/user/",
        {"action": "issue_enrolment_link", "_selected_action": [newcomer.pk]},
    )
    assert response.status_code == 200
    url = re.search(r'class="enrol-link">([^<]+)<', response.content.decode()).group(1)
    assert url.startswith("http://testserver/admin/otp/enrol/")
    audit = AuditLog.objects.get(action="otp_enrol_link")
    assert audit.actor == boss
    assert audit.object_id == str(newcomer.pk)
    assert EnrolmentLink.objects.get(user=newcomer).issued_by == boss
    # The secret is not stored, only its digest.
    secret = url.rstrip("/").rsplit("/", 1)[1]
    assert not EnrolmentLink.objects.filter(digest__contains=secret).exists()

    client = Client()
    assert client.get(url.removeprefix("http://testserver")).status_code == 302
    _password_step(client, newcomer)
    assert client.get("/admin/otp/enrol/").status_code == 200


def test_only_a_superuser_may_issue_links():
    finance = staff_user("finance")
    finance.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="accounts", codename__in=["view_user", "change_user"]
        )
    )
    newcomer = staff_user("support", device=False)
    client = verified_client(finance)
    listing = client.get("/admin/accounts/user/")
    assert listing.status_code == 200
    assert b"issue_enrolment_link" not in listing.content
    client.post(
        "/admin/accounts/user/",
        {"action": "issue_enrolment_link", "_selected_action": [newcomer.pk]},
    )
    assert not EnrolmentLink.objects.exists()
    with pytest.raises(PermissionDenied):
        otp.enrolment_link_issue(user=newcomer, actor=finance)


def test_the_command_issues_a_link(settings):
    newcomer = staff_user("support", device=False)
    out = io.StringIO()
    call_command(
        "staff_totp",
        "--enrol-link",
        newcomer.username,
        "--base-url",
        "https://a.example",
        stdout=out,
    )
    url = out.getvalue().split()[0]
    assert url.startswith("https://a.example/admin/otp/enrol/")
    audit = AuditLog.objects.get(action="otp_enrol_link")
    assert audit.actor is None
    assert "command line" in audit.reason
    client = Client()
    assert client.get(url.removeprefix("https://a.example")).status_code == 302
    with pytest.raises(CommandError):
        call_command("staff_totp", "--enrol-link", "nobody-here", stdout=io.StringIO())


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


# --- Wrong codes count against the login lockout ---------------------------------------------


@pytest.fixture
def lockout_after_3(settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's own delay would refuse the right code


def test_wrong_codes_lock_the_login_and_end_the_half_login(lockout_after_3):
    user = staff_user("finance")
    client = Client()
    _password_step(client, user)
    for _ in range(2):
        assert client.post("/admin/otp/", {"otp_token": "000000"}).status_code == 200
    locked = client.post("/admin/otp/", {"otp_token": "000000"})
    assert locked.status_code == 429
    assert "Signing in is locked for up to 15 minutes" in locked.content.decode()
    assert otp.PENDING_USER not in client.session

    # The right code no longer signs in: the half-login is gone.
    response = client.post("/admin/otp/", {"otp_token": current_code(device_of(user))})
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/admin/").status_code == 302
    # Starting over, the password step is refused while the lock lasts.
    response = client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200
    assert otp.PENDING_USER not in client.session

    assert AuditLog.objects.filter(actor=user, action="admin_login_failed").count() == 3
    lock = AuditLog.objects.get(actor=user, action="admin_login_locked")
    assert lock.object_id == str(user.pk)
    assert lock.ip == "127.0.0.1"
    assert not AuditLog.objects.filter(action="admin_login").exists()


def test_a_second_half_login_is_refused_once_locked(lockout_after_3):
    user = staff_user("finance")
    guesser, owner = Client(), Client()
    _password_step(guesser, user)
    _password_step(owner, user)  # e.g. a second tab, started before the guesses
    for _ in range(3):
        guesser.post("/admin/otp/", {"otp_token": "000000"})
    response = owner.post("/admin/otp/", {"otp_token": current_code(device_of(user))})
    assert response.status_code == 429
    assert otp.PENDING_USER not in owner.session
    assert owner.get("/admin/").status_code == 302
    assert not AuditLog.objects.filter(action="admin_login").exists()
    assert AuditLog.objects.filter(actor=user, action="admin_login_locked").count() == 1


def test_wrong_passwords_and_wrong_codes_share_one_count(lockout_after_3):
    user = staff_user("finance")
    client = Client()
    for _ in range(2):
        client.post("/admin/login/", {"username": user.username, "password": "guess"})
    _password_step(client, user)
    assert client.post("/admin/otp/", {"otp_token": "000000"}).status_code == 429
    assert AuditLog.objects.filter(actor=user, action="admin_login_locked").exists()


def test_a_right_code_before_the_limit_signs_in_and_resets_the_count(lockout_after_3):
    user = staff_user("finance")
    device = device_of(user)
    client = Client()
    _password_step(client, user)
    for _ in range(2):
        client.post("/admin/otp/", {"otp_token": "000000"})
    response = client.post("/admin/otp/", {"otp_token": current_code(device)})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200

    # Two more wrong codes would have made four: the count started again at the login.
    again = Client()
    _password_step(again, user)
    for _ in range(2):
        assert again.post("/admin/otp/", {"otp_token": "000000"}).status_code == 200
    response = again.post("/admin/otp/", {"otp_token": next_code(device)})
    assert response["Location"] == "/admin/"
    assert not AuditLog.objects.filter(action="admin_login_locked").exists()


def test_wrong_enrolment_codes_count_against_the_lockout_too(lockout_after_3):
    user = staff_user("support", device=False)
    client = Client()
    _open_link(client, user)
    assert _password_step(client, user) == "/admin/otp/enrol/"
    for _ in range(2):
        assert client.post("/admin/otp/enrol/", {"otp_token": "000000"}).status_code == 200
    locked = client.post("/admin/otp/enrol/", {"otp_token": "000000"})
    assert locked.status_code == 429
    assert "locked" in locked.content.decode()
    assert otp.PENDING_USER not in client.session

    device = device_of(user)
    response = client.post("/admin/otp/enrol/", {"otp_token": current_code(device)})
    assert response["Location"].startswith("/admin/login/")
    device.refresh_from_db()
    assert not device.confirmed
    assert AuditLog.objects.filter(actor=user, action="admin_login_locked").count() == 1


def test_wrong_passwords_alone_lock_a_staff_account_and_audit_it_once(lockout_after_3):
    user = staff_user("finance")
    client = Client()
    for _ in range(5):
        response = client.post("/admin/login/", {"username": user.username, "password": "guess"})
        assert response.status_code == 200  # the usual "wrong credentials" page, nothing more
        assert "locked" not in response.content.decode().lower()
    response = client.post("/admin/login/", {"username": user.username, "password": PASSWORD})
    assert otp.PENDING_USER not in client.session

    lock = AuditLog.objects.get(actor=user, action="admin_login_locked")
    assert lock.reason == "Too many wrong passwords"
    assert lock.ip == "127.0.0.1"


def test_a_locked_non_staff_username_writes_no_audit(lockout_after_3):
    viewer = staff_user("finance")
    type(viewer).objects.filter(pk=viewer.pk).update(is_staff=False)
    client = Client()
    for _ in range(4):
        client.post("/admin/login/", {"username": viewer.username, "password": "guess"})
    client.post("/admin/login/", {"username": "nobody-at-all", "password": "guess"})
    assert not AuditLog.objects.filter(action="admin_login_locked").exists()


# --- Admin sessions: 12 h at most, 30 minutes idle --------------------------------------------


def _signed_in(user) -> Client:
    client = Client()
    _password_step(client, user)
    response = client.post("/admin/otp/", {"otp_token": current_code(device_of(user))})
    assert response["Location"] == "/admin/"
    return client


def _age_session(client: Client, *, started_ago: int, seen_ago: int) -> None:
    session = client.session
    now = int(time.time())
    session[otp.ADMIN_SESSION_STARTED] = now - started_ago
    session[otp.ADMIN_SESSION_SEEN] = now - seen_ago
    session.save()


def test_an_admin_session_ends_after_30_idle_minutes(settings):
    assert settings.ADMIN_SESSION_IDLE_MINUTES == 30
    user = staff_user("finance")
    client = _signed_in(user)
    _age_session(client, started_ago=29 * 60, seen_ago=29 * 60)
    assert client.get("/admin/").status_code == 200  # used again within 30 minutes
    assert client.session[otp.ADMIN_SESSION_SEEN] >= int(time.time()) - 5

    _age_session(client, started_ago=40 * 60, seen_ago=31 * 60)
    response = client.get("/admin/staff/wallet/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "_auth_user_id" not in client.session  # signed out, not just bounced
    assert client.get("/admin/").status_code == 302


def test_an_admin_session_ends_after_12_hours_however_busy(settings):
    assert settings.ADMIN_SESSION_MAX_HOURS == 12
    user = staff_user("finance")
    client = _signed_in(user)
    _age_session(client, started_ago=11 * 3600, seen_ago=60)
    assert client.get("/admin/").status_code == 200
    _age_session(client, started_ago=12 * 3600 + 60, seen_ago=60)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_password_change_in_the_admin_revokes_every_api_token():
    from knox.models import AuthToken

    from tests.helpers import client_for

    user = staff_user("finance")
    app = client_for(user)
    client = verified_client(user)
    new = "a-brand-new-long-passphrase"
    response = client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert app.get("/api/v1/me/").status_code == 401
    assert not AuthToken.objects.filter(user=user).exists()
    assert client.get("/admin/").status_code == 200  # this session stays
