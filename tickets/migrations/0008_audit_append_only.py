"""On PostgreSQL the audit table refuses UPDATE and DELETE outright; the hash chain
(audit_verify) catches whoever gets around that with owner rights."""

from django.db import migrations

from config.migration_ops import postgresql_only

CREATE = """
CREATE OR REPLACE FUNCTION concierge_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tickets_auditentry_append_only BEFORE UPDATE OR DELETE ON tickets_auditentry
    FOR EACH ROW EXECUTE FUNCTION concierge_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS tickets_auditentry_append_only ON tickets_auditentry;
DROP FUNCTION IF EXISTS concierge_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("tickets", "0007_audit_trail")]
    operations = [postgresql_only(CREATE, DROP)]
