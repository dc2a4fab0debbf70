"""On PostgreSQL an audit append is one call: ``concierge_audit_append`` locks the
organization's row, reads the chain's last entry, hashes and inserts the new entries, in one
round trip. Appenders of one organization take turns on that lock until they commit, so each
round trip the lock holder waits for its web process (three before, and the process busy with
other requests) was time every other appender waited (tenancy.audit._append_in_database).

Each entry's hash is sha256 of the same canonical JSON that tenancy.audit._digest builds: the
caller sends it up to the "organization" key (``heads``, ASCII), the function appends
``"prev"`` and ``"seq"``, the last two keys in sorted order. audit_verify recomputes every
hash in Python, so the two can never drift apart unnoticed."""

from django.db import migrations

from config.migration_ops import postgresql_only

CREATE = """
CREATE OR REPLACE FUNCTION concierge_audit_append(
    p_organization bigint, p_heads text[], p_actor_ids integer[], p_labels text[], p_actions text[],
    p_object_types text[], p_object_ids text[], p_data text[], p_created timestamptz[]
) RETURNS TABLE(entry_id bigint, entry_seq bigint, entry_prev text, entry_hash text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last_seq bigint;
    last_hash text;
BEGIN
    -- Each statement of a volatile function takes a fresh snapshot (READ COMMITTED): the read
    -- below sees the entries of whoever held the lock before.
    PERFORM 1 FROM tickets_organization WHERE id = p_organization FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING MESSAGE = 'organization ' || p_organization || ' does not exist';
    END IF;
    SELECT a.seq, a.hash INTO last_seq, last_hash FROM tickets_auditentry a
        WHERE a.organization_id = p_organization ORDER BY a.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        last_seq := 0;
        last_hash := repeat('0', 64);
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_heads, 1), 0) LOOP
        entry_seq := last_seq + 1;
        entry_prev := last_hash;
        entry_hash := encode(sha256(convert_to(
            p_heads[i] || ',"prev":"' || entry_prev || '","seq":' || entry_seq || '}', 'UTF8')), 'hex');
        INSERT INTO tickets_auditentry
            (organization_id, seq, actor_user_id, actor_label, action, object_type, object_id, data,
             created_at, prev_hash, hash)
        VALUES (p_organization, entry_seq, p_actor_ids[i], p_labels[i], p_actions[i], p_object_types[i],
                p_object_ids[i], p_data[i]::jsonb, p_created[i], entry_prev, entry_hash)
        RETURNING id INTO entry_id;
        last_seq := entry_seq;
        last_hash := entry_hash;
        RETURN NEXT;
    END LOOP;
END;
$$;
"""
DROP = """
DROP FUNCTION IF EXISTS concierge_audit_append(bigint, text[], integer[], text[], text[], text[], text[], text[],
    timestamptz[]);
"""


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0004_organization_sla_version"), ("tickets", "0008_audit_append_only")]
    operations = [postgresql_only(CREATE, DROP)]
