import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction

from accounts.tests.factories import UserFactory
from staff.models import AdjustmentRequest, AdjustmentStatus, AuditLog
from staff.permissions import FINANCE, ROLE_PERMISSIONS, SUPPORT
from staff.tests.factories import staff_user, verified_client
from wallets.models import LedgerTransaction
from wallets.services import wallet_adjust, wallet_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance():
    return staff_user(FINANCE)


@pytest.fixture
def support():
    return staff_user(SUPPORT)


@pytest.fixture
def viewer():
    user = UserFactory(username="dana", email="dana@example.com")
    wallet_adjust(user=user, coins=500, reason="seed", actor=None, idempotency_key="seed:dana")
    return user


def _balance(user) -> int:
    return wallet_get(user=user).balance


def _url(user, action=""):
    wallet = wallet_get(user=user)
    return f"/admin/staff/wallet/{wallet.pk}/{action + '/' if action else 'change/'}"


# --- Roles ------------------------------------------------------------------------------


def test_role_groups_exist_with_their_permissions():
    support = Group.objects.get(name=SUPPORT)
    finance = Group.objects.get(name=FINANCE)
    support_perms = {f"{p.content_type.app_label}.{p.codename}" for p in support.permissions.all()}
    finance_perms = {f"{p.content_type.app_label}.{p.codename}" for p in finance.permissions.all()}
    assert "staff.freeze_wallet" in support_perms
    assert "staff.view_wallet" in support_perms
    assert "staff.adjust_wallet" not in support_perms
    assert {"staff.adjust_wallet", "staff.approve_payout", "staff.resolve_discrepancy"} <= (
        finance_perms
    )
    assert finance_perms <= set(ROLE_PERMISSIONS[FINANCE])


def test_staff_without_a_role_sees_nothing_and_can_do_nothing(viewer):
    nobody = staff_user(None)
    client = verified_client(nobody)
    assert client.get("/admin/staff/wallet/").status_code == 403
    response = client.post(_url(viewer, "freeze"), {"reason": "x"})
    assert response.status_code == 403
    assert not wallet_get(user=viewer).is_frozen


# --- Wallet console ---------------------------------------------------------------------


@pytest.mark.parametrize("query", ["dana", "dana@example.com"])
def test_wallet_search_by_username_and_email(support, viewer, query):
    other = UserFactory()
    wallet_get(user=other)
    response = verified_client(support).get("/admin/staff/wallet/", {"q": query})
    assert response.status_code == 200
    assert b"dana@example.com" in response.content
    assert other.email.encode() not in response.content


def test_wallet_search_by_creator_handle(support):
    from creators.models import Creator

    star = UserFactory(username="zed")
    Creator.objects.create(user=star, handle="bigstar", display_name="Big Star")
    wallet_get(user=star)
    response = verified_client(support).get("/admin/staff/wallet/", {"q": "bigstar"})
    assert b"@bigstar" in response.content


def test_wallet_page_shows_balance_and_paginated_entries(support, viewer):
    for i in range(30):
        wallet_adjust(user=viewer, coins=1, reason=f"drip {i}", actor=None, idempotency_key=f"d{i}")
    client = verified_client(support)
    page = client.get(_url(viewer)).content.decode()
    assert "530 coins" in page
    assert "Ledger entries (31)" in page
    assert "drip 29" in page
    assert "seed" not in page
    older = client.get(_url(viewer), {"entries_page": 2}).content.decode()
    assert "seed" in older
    # Read-only: support sees no adjust form, and the change form has no save button.
    assert 'id="adjust-form"' not in page
    assert 'name="_save"' not in page


def test_finance_credit_and_debit_with_reason_are_posted_and_audited(finance, viewer):
    client = verified_client(finance)
    client.post(_url(viewer, "adjust"), {"coins": 250, "reason": "goodwill", "nonce": "0" * 32})
    assert _balance(viewer) == 750
    client.post(_url(viewer, "adjust"), {"coins": -50, "reason": "correction", "nonce": "1" * 32})
    assert _balance(viewer) == 700
    rows = list(AuditLog.objects.filter(actor=finance).order_by("id"))
    assert [r.action for r in rows] == ["wallet_credit", "wallet_debit"]
    assert rows[0].before == {"balance": 500}
    assert rows[0].after["balance"] == 750
    assert rows[0].reason == "goodwill"
    assert rows[0].ip == "127.0.0.1"
    journal = LedgerTransaction.objects.get(pk=rows[0].after["transaction"])
    assert journal.actor == finance
    assert journal.memo == "goodwill"


def test_a_double_submitted_adjustment_posts_once(finance, viewer):
    client = verified_client(finance)
    form = {"coins": 100, "reason": "goodwill", "nonce": "2" * 32}
    client.post(_url(viewer, "adjust"), form)
    client.post(_url(viewer, "adjust"), form)
    assert _balance(viewer) == 600


def test_adjustment_needs_a_reason_and_never_overdraws(finance, viewer):
    client = verified_client(finance)
    client.post(_url(viewer, "adjust"), {"coins": 10, "reason": "", "nonce": "3" * 32})
    response = client.post(
        _url(viewer, "adjust"),
        {"coins": -999, "reason": "too much", "nonce": "4" * 32},
        follow=True,
    )
    assert _balance(viewer) == 500
    assert b"Not enough coins" in response.content
    # (The fixture's seed credit has its own row, by no one.)
    assert not AuditLog.objects.filter(action__startswith="wallet_", actor=finance).exists()


def test_support_cannot_adjust(support, viewer):
    response = verified_client(support).post(
        _url(viewer, "adjust"), {"coins": 10, "reason": "please", "nonce": "5" * 32}
    )
    assert response.status_code == 403
    assert _balance(viewer) == 500
    assert not AuditLog.objects.filter(action__startswith="wallet_", actor=support).exists()


def test_support_freezes_and_unfreezes_with_reasons(support, viewer):
    client = verified_client(support)
    client.post(_url(viewer, "freeze"), {"reason": "suspicious logins"})
    wallet = wallet_get(user=viewer)
    assert wallet.is_frozen
    assert wallet.frozen_reason == "suspicious logins"
    client.post(_url(viewer, "unfreeze"), {"reason": "user verified"})
    assert not wallet_get(user=viewer).is_frozen
    rows = list(AuditLog.objects.filter(actor=support).order_by("id"))
    assert [(r.action, r.reason) for r in rows] == [
        ("wallet_freeze", "suspicious logins"),
        ("wallet_unfreeze", "user verified"),
    ]
    assert rows[0].before["is_frozen"] is False
    assert rows[0].after["is_frozen"] is True


def test_freeze_without_reason_changes_nothing(support, viewer):
    verified_client(support).post(_url(viewer, "freeze"), {"reason": ""})
    assert not wallet_get(user=viewer).is_frozen
    assert not AuditLog.objects.filter(action="wallet_freeze").exists()


def test_transaction_ban_is_lifted_by_finance_only(support, finance, viewer):
    verified_client(support).post(_url(viewer, "ban"), {"reason": "card testing"})
    assert wallet_get(user=viewer).frozen_reason == "Transaction ban: card testing"
    assert AuditLog.objects.filter(action="wallet_ban", actor=support).exists()
    response = verified_client(support).post(_url(viewer, "unfreeze"), {"reason": "oops"})
    assert response.status_code == 403
    assert wallet_get(user=viewer).is_frozen
    verified_client(finance).post(_url(viewer, "unfreeze"), {"reason": "cleared"})
    assert not wallet_get(user=viewer).is_frozen


def test_actions_refuse_get(finance, viewer):
    assert verified_client(finance).get(_url(viewer, "freeze")).status_code == 405


# --- Maker-checker ----------------------------------------------------------------------


def test_large_credit_waits_for_a_different_finance_user(finance, viewer, settings):
    settings.ADJUSTMENT_APPROVAL_ABOVE = 1000
    checker = staff_user(FINANCE)
    maker_client = verified_client(finance)
    maker_client.post(_url(viewer, "adjust"), {"coins": 5000, "reason": "promo", "nonce": "6" * 32})
    request = AdjustmentRequest.objects.get()
    assert request.status == AdjustmentStatus.PENDING
    assert request.requested_by == finance
    assert _balance(viewer) == 500

    # The maker cannot approve their own request, even by crafting the POST.
    page = maker_client.get(f"/admin/staff/adjustmentrequest/{request.pk}/change/")
    assert b"a different finance user must approve" in page.content
    response = maker_client.post(f"/admin/staff/adjustmentrequest/{request.pk}/approve/")
    assert response.status_code == 403
    request.refresh_from_db()
    assert request.status == AdjustmentStatus.PENDING
    assert _balance(viewer) == 500

    # Support cannot approve either.
    support = staff_user(SUPPORT)
    response = verified_client(support).post(
        f"/admin/staff/adjustmentrequest/{request.pk}/approve/"
    )
    assert response.status_code == 403
    assert _balance(viewer) == 500

    verified_client(checker).post(
        f"/admin/staff/adjustmentrequest/{request.pk}/approve/", {"note": "ok"}
    )
    request.refresh_from_db()
    assert request.status == AdjustmentStatus.APPROVED
    assert request.decided_by == checker
    assert request.transaction.idempotency_key == f"adjustment-request:{request.pk}"
    assert _balance(viewer) == 5500
    # Approving again changes nothing.
    verified_client(checker).post(f"/admin/staff/adjustmentrequest/{request.pk}/approve/")
    assert _balance(viewer) == 5500
    actions = list(AuditLog.objects.order_by("id").values_list("action", "actor"))
    # The fixture's seed credit (by no one), the request, then the approval: its ledger move
    # is audited by wallet_adjust itself, then the decision.
    assert actions == [
        ("wallet_credit", None),
        ("adjustment_request", finance.pk),
        ("wallet_credit", checker.pk),
        ("adjustment_approve", checker.pk),
    ]


def test_rejected_request_posts_nothing(finance, viewer, settings):
    settings.ADJUSTMENT_APPROVAL_ABOVE = 10
    checker = staff_user(FINANCE)
    verified_client(finance).post(
        _url(viewer, "adjust"), {"coins": 500, "reason": "promo", "nonce": "7" * 32}
    )
    request = AdjustmentRequest.objects.get()
    verified_client(checker).post(
        f"/admin/staff/adjustmentrequest/{request.pk}/reject/", {"note": "no basis"}
    )
    request.refresh_from_db()
    assert request.status == AdjustmentStatus.REJECTED
    assert _balance(viewer) == 500
    assert AuditLog.objects.filter(action="adjustment_reject", reason="no basis").exists()


def test_database_refuses_self_approval(finance, viewer):
    request = AdjustmentRequest.objects.create(
        user=viewer, coins=1, reason="x", requested_by=finance
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AdjustmentRequest.objects.filter(pk=request.pk).update(decided_by=finance)


# --- Audit log --------------------------------------------------------------------------


def test_audit_log_is_append_only_in_the_model_and_the_database(finance, viewer):
    from accounts.audit import audit_record

    row = audit_record(actor=finance, action="test", obj=viewer, reason="r")
    with pytest.raises(PermissionError):
        row.save()
    with pytest.raises(PermissionError):
        row.delete()
    with pytest.raises(PermissionError):
        AuditLog.objects.filter(pk=row.pk).update(reason="changed")
    with pytest.raises(PermissionError):
        AuditLog.objects.all().delete()
    for sql in (
        "UPDATE staff_auditlog SET reason = 'changed'",
        "DELETE FROM staff_auditlog",
    ):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    row = AuditLog.objects.get(pk=row.pk)
    assert row.reason == "r"
    assert row.object_type == "accounts.user"


def test_audit_log_cannot_be_changed_through_the_admin(finance, viewer):
    from accounts.audit import audit_record

    superuser = staff_user(None, is_superuser=True)
    row = audit_record(actor=finance, action="test", obj=viewer, reason="r")
    for user in (finance, superuser):
        client = verified_client(user)
        assert client.get("/admin/staff/auditlog/").status_code == 200
        assert client.get(f"/admin/staff/auditlog/{row.pk}/change/").status_code == 200
        assert (
            client.post(
                f"/admin/staff/auditlog/{row.pk}/change/", {"reason": "edited", "action": "x"}
            ).status_code
            == 403
        )
        assert client.get(f"/admin/staff/auditlog/{row.pk}/delete/").status_code == 403
        assert (
            client.post(f"/admin/staff/auditlog/{row.pk}/delete/", {"post": "yes"}).status_code
            == 403
        )
        assert client.get("/admin/staff/auditlog/add/").status_code == 403
        response = client.post(
            "/admin/staff/auditlog/",
            {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
        )
        assert response.status_code in (200, 302, 403)
    assert AuditLog.objects.filter(pk=row.pk, reason="r").exists()


# --- Dashboard --------------------------------------------------------------------------


def test_dashboard_renders_kpis_and_charts(support, viewer):
    wallet_adjust(user=viewer, coins=-100, reason="x", actor=None, idempotency_key="dash")
    verified = verified_client(support)
    html = verified.get("/admin/").content.decode()
    assert "Coins outstanding" in html
    assert "<svg" in html
    assert "Coins gifted per day" in html
    assert "Revenue per day" in html
    assert "Frozen wallets" in html


def test_plain_admin_edits_are_audited_too():
    superuser = staff_user(None, is_superuser=True)
    client = verified_client(superuser)
    client.post("/admin/auth/group/add/", {"name": "ops"})
    group = Group.objects.get(name="ops")
    client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "operations"})
    client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    rows = list(
        AuditLog.objects.filter(object_type="auth.group")
        .order_by("id")
        .values_list("action", "actor")
    )
    assert rows == [
        ("admin_add", superuser.pk),
        ("admin_change", superuser.pk),
        ("admin_delete", superuser.pk),
    ]
