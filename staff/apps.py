from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs):
    from staff.permissions import roles_sync

    roles_sync()


class StaffConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "staff"
    verbose_name = "Staff console"

    def ready(self) -> None:
        from django.contrib import admin

        from staff.sites import StaffAdminSite

        # Every app registered its ModelAdmins on ``admin.site`` already; swapping the class
        # (django-otp's documented way) puts the 2FA gate and the dashboard in front of all of
        # them without touching their code or config/urls.py.
        admin.site.__class__ = StaffAdminSite
        admin.site.site_header = "Applause staff console"
        admin.site.site_title = "Applause staff"
        admin.site.index_title = "Dashboard"
        from staff.admin_audit import wire

        wire(admin.site)  # plain admin add / change / delete get audit rows too
        # Runs after every migrate, once Django has created the permissions of new models.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="staff_roles_sync")
