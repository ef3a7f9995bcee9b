"""Staff roles: which Django model permissions each role's group carries (what the admin menu
shows). The role names and the checks every action makes (``has_role``, ``require_role``) live
at the bottom, in ``accounts.roles``, so the services below the console can check them."""

from __future__ import annotations

from accounts.roles import FINANCE, ROLES, SUPPORT, has_role, require_role

__all__ = [
    "FINANCE",
    "ROLES",
    "ROLE_PERMISSIONS",
    "SUPPORT",
    "has_role",
    "require_role",
    "roles_sync",
]

_VIEW_EVERYTHING = [
    "accounts.view_user",
    "wallets.view_account",
    "wallets.view_ledgertransaction",
    "wallets.view_entry",
    "wallets.view_recharge",
    "wallets.view_rechargerefund",
    "wallets.view_coinpackage",
    "wallets.view_coinpackageprice",
    "wallets.view_coinpackagepricechange",
    "wallets.view_discrepancy",
    "wallets.view_reconciliationrun",
    "wallets.view_stripeevent",
    "wallets.view_stripedispute",
    "gifts.view_gift",
    "gifts.view_giftevent",
    "gifts.view_goal",
    "creators.view_creator",
    "payouts.view_payout",
    "payouts.view_payoutbatch",
    "payouts.view_payoutmethod",
    "payouts.view_payoutevent",
    "payouts.view_payoutdiscrepancy",
    "payouts.view_payoutreconciliationrun",
    "staff.view_wallet",
    "staff.view_auditlog",
    "staff.view_adjustmentrequest",
    "moderation.view_messagereport",
]

# "app_label.codename" per role. Models that do not exist (yet) are skipped; the post_migrate
# hook (staff.apps) tops the groups up when they land.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT: [
        *_VIEW_EVERYTHING,
        "staff.freeze_wallet",
        "staff.refund_recharge",
        "wallets.change_recharge",  # the admin only offers actions to those who may change
        "moderation.change_messagereport",  # the moderation queue: hide or dismiss
    ],
    FINANCE: [
        *_VIEW_EVERYTHING,
        "staff.freeze_wallet",
        "staff.refund_recharge",
        "staff.adjust_wallet",
        "staff.approve_adjustment",
        "staff.approve_payout",
        "staff.resolve_discrepancy",
        "wallets.change_recharge",
        "wallets.change_discrepancy",
        "payouts.change_payout",
        "payouts.change_payoutmethod",
        "payouts.change_payoutdiscrepancy",
        "gifts.add_gift",
        "gifts.change_gift",
        "wallets.add_coinpackage",
        "wallets.change_coinpackage",
        "wallets.add_coinpackageprice",
        "wallets.change_coinpackageprice",
    ],
}


def roles_sync(apps=None, *, verbosity: int = 0) -> None:
    """Create the role groups and grant them every listed permission that exists. Additive and
    idempotent: it never removes a permission someone granted by hand."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [p.split(".", 1) for p in perms]
        found = Permission.objects.filter(
            content_type__app_label__in={a for a, _ in wanted},
            codename__in={c for _, c in wanted},
        ).select_related("content_type")
        pairs = {(a, c) for a, c in wanted}
        group.permissions.add(
            *[p for p in found if (p.content_type.app_label, p.codename) in pairs]
        )
