-- Session idle expiry and the audit trail (docs/security.md).

ALTER TABLE tokens ADD COLUMN last_used_at timestamptz;

-- Every read of patient data and every action: who, what, when, from where.
-- Append-only: the application has no way to change or delete a row, and
-- the database refuses it too.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    user_id     bigint,
    username    text NOT NULL,
    action      text NOT NULL,
    patient_id  bigint,
    detail      jsonb NOT NULL,    -- never a patient's name or NHS number
    addr        text
);
CREATE INDEX audit_log_patient ON audit_log(patient_id, at);
CREATE INDEX audit_log_user ON audit_log(user_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
