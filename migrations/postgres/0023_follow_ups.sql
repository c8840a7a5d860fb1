-- Follow-ups a clinician asks for on a stay ("call back in an hour"): at
-- `due_at` Vigil raises a `follow-up` alert in the ward's queue, so a call
-- promised is not forgotten when the nurse is busy or the shift changes.
-- `raised_at` when it was put in the queue (`alert_id` the alert, NULL if
-- the stay had ended), or `cancelled_*` when a clinician took it back.
CREATE TABLE follow_ups (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id    bigint NOT NULL REFERENCES patients(id),
    episode_id    bigint NOT NULL REFERENCES episodes(id),
    due_at        timestamptz NOT NULL,
    reason        text NOT NULL,
    set_by        text NOT NULL,
    set_at        timestamptz NOT NULL,
    raised_at     timestamptz,
    alert_id      bigint REFERENCES alerts(id),
    cancelled_by  text,
    cancelled_at  timestamptz
);
-- The timer's look-up of what is due, every second.
CREATE INDEX follow_ups_due ON follow_ups(due_at) WHERE raised_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX follow_ups_patient ON follow_ups(patient_id, due_at);
