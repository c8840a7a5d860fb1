-- Alerts and their audited lifecycle (docs/alerts.md).

CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    patient_id    INTEGER NOT NULL REFERENCES patients(id),
    ward_id       INTEGER NOT NULL REFERENCES wards(id),
    rule_id       TEXT NOT NULL,
    severity      TEXT NOT NULL CHECK (severity IN ('low', 'low-medium', 'medium', 'high')),
    status        TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'escalated', 'resolved')),
    message       TEXT NOT NULL,
    count         INTEGER NOT NULL DEFAULT 1,
    latest_value  TEXT,                 -- JSON: what the rule saw last
    evidence      TEXT NOT NULL,        -- JSON array of observation ids behind the alert
    raised_at     TEXT NOT NULL,        -- measurement time of the reading that raised it
    updated_at    TEXT NOT NULL,
    escalate_at   TEXT,                 -- escalates if still unacknowledged then
    resolved_at   TEXT,
    outcome       TEXT,
    note          TEXT
);
-- One live alert per patient and rule: a repeat updates it.
CREATE UNIQUE INDEX alerts_one_live ON alerts(patient_id, rule_id) WHERE status != 'resolved';
CREATE INDEX alerts_ward_status ON alerts(ward_id, status);

-- Every transition, who made it, when and why. Append-only.
CREATE TABLE alert_events (
    id        INTEGER PRIMARY KEY,
    alert_id  INTEGER NOT NULL REFERENCES alerts(id),
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,            -- a username, or "system"
    action    TEXT NOT NULL CHECK (action IN ('raised', 'updated', 'acknowledged', 'escalated', 'resolved')),
    detail    TEXT NOT NULL             -- JSON
);
CREATE INDEX alert_events_alert ON alert_events(alert_id, id);
CREATE TRIGGER alert_events_no_update BEFORE UPDATE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
CREATE TRIGGER alert_events_no_delete BEFORE DELETE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
