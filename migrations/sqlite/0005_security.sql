-- Session idle expiry and the audit trail (docs/security.md).

ALTER TABLE tokens ADD COLUMN last_used_at TEXT;

-- Every read of patient data and every action: who, what, when, from where.
-- Append-only: the application has no way to change or delete a row, and
-- the database refuses it too.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    user_id     INTEGER,
    username    TEXT NOT NULL,
    action      TEXT NOT NULL,
    patient_id  INTEGER,
    detail      TEXT NOT NULL,     -- JSON, never a patient's name or NHS number
    addr        TEXT
);
CREATE INDEX audit_log_patient ON audit_log(patient_id, at);
CREATE INDEX audit_log_user ON audit_log(user_id, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
