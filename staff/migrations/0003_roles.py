"""The staff roles: groups ``support`` and ``finance`` with their permissions.

Permissions are normally created after all migrations (post_migrate); create them now for the
apps migrated so far. Models that arrive later are granted by the post_migrate hook
(``staff.apps``), which runs the same additive ``roles_sync``.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def forwards(apps, schema_editor):
    from staff.permissions import roles_sync

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    roles_sync(apps)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["support", "finance"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0002_auditlog_append_only_trigger"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
