-- Alerts and their audited lifecycle (docs/alerts.md).

CREATE TABLE alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id    bigint NOT NULL REFERENCES patients(id),
    ward_id       bigint NOT NULL REFERENCES wards(id),
    rule_id       text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('low', 'low-medium', 'medium', 'high')),
    status        text NOT NULL CHECK (status IN ('open', 'acknowledged', 'escalated', 'resolved')),
    message       text NOT NULL,
    count         bigint NOT NULL DEFAULT 1,
    latest_value  jsonb,                -- what the rule saw last
    evidence      bigint[] NOT NULL,    -- observation ids behind the alert
    raised_at     timestamptz NOT NULL, -- measurement time of the reading that raised it
    updated_at    timestamptz NOT NULL,
    escalate_at   timestamptz,          -- escalates if still unacknowledged then
    resolved_at   timestamptz,
    outcome       text,
    note          text
);
-- One live alert per patient and rule: a repeat updates it.
CREATE UNIQUE INDEX alerts_one_live ON alerts(patient_id, rule_id) WHERE status <> 'resolved';
CREATE INDEX alerts_ward_status ON alerts(ward_id, status);
-- The escalation timer polls for open alerts that are due.
CREATE INDEX alerts_due ON alerts(escalate_at) WHERE status = 'open' AND escalate_at IS NOT NULL;

-- Every transition, who made it, when and why. Append-only.
CREATE TABLE alert_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts(id),
    at        timestamptz NOT NULL,
    actor     text NOT NULL,            -- a username, or "system"
    action    text NOT NULL CHECK (action IN ('raised', 'updated', 'acknowledged', 'escalated', 'resolved')),
    detail    jsonb NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events(alert_id, id);

CREATE FUNCTION alert_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert_events is append-only';
END;
$$;
CREATE TRIGGER alert_events_no_update_delete BEFORE UPDATE OR DELETE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION alert_events_append_only();
CREATE TRIGGER alert_events_no_truncate BEFORE TRUNCATE ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION alert_events_append_only();
