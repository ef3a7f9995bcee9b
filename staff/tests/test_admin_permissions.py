"""The admin respects Django's model permissions: a view-only role can look, never change."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.test import RequestFactory

from gifts.models import Gift
from gifts.tests.factories import GiftFactory
from staff.permissions import _VIEW_EVERYTHING
from staff.tests.factories import staff_user, verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def view_only():
    group = Group.objects.create(name="auditor (view only)")
    for dotted in _VIEW_EVERYTHING:
        app_label, codename = dotted.split(".")
        perm = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if perm is not None:
            group.permissions.add(perm)
    user = staff_user()
    user.groups.add(group)
    return user


def test_a_view_only_role_cannot_delete_a_gift(view_only):
    gift = GiftFactory(name="Rose", slug="rose-view-only")
    client = verified_client(view_only)
    assert client.get(f"/admin/gifts/gift/{gift.pk}/change/").status_code == 200

    response = client.post(f"/admin/gifts/gift/{gift.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    listing = client.get("/admin/gifts/gift/")
    assert listing.status_code == 200
    assert b"delete_selected" not in listing.content
    client.post(
        "/admin/gifts/gift/",
        {"action": "delete_selected", "_selected_action": [gift.pk], "post": "yes"},
    )
    assert Gift.objects.filter(pk=gift.pk).exists()


def test_no_admin_lets_a_view_only_role_add_or_delete(view_only):
    request = RequestFactory().get("/admin/")
    request.user = view_only
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        assert not model_admin.has_add_permission(request), label
        assert not model_admin.has_delete_permission(request), label
        obj = model.objects.first()
        if obj is not None:
            assert not model_admin.has_delete_permission(request, obj), label


def test_a_role_with_delete_permission_may_still_delete_an_unsent_gift(view_only):
    gift = GiftFactory(name="Tulip", slug="tulip-deletable")
    view_only.groups.first().permissions.add(
        Permission.objects.get(content_type__app_label="gifts", codename="delete_gift")
    )
    response = verified_client(view_only).post(
        f"/admin/gifts/gift/{gift.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Gift.objects.filter(pk=gift.pk).exists()
