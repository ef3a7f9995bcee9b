"""PostgreSQL refuses UPDATE and DELETE on the audit log, whoever asks."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION staff_auditlog_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite relies on the model-layer guard.
    schema_editor.execute(FUNCTION, params=None)
    schema_editor.execute(
        "CREATE TRIGGER staff_auditlog_append_only BEFORE UPDATE OR DELETE ON staff_auditlog "
        "FOR EACH ROW EXECUTE FUNCTION staff_auditlog_refuse_change()"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS staff_auditlog_append_only ON staff_auditlog")
    schema_editor.execute("DROP FUNCTION IF EXISTS staff_auditlog_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("staff", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
