-- Follow-ups a clinician asks for on a stay ("call back in an hour"): at
-- `due_at` Vigil raises a `follow-up` alert in the ward's queue, so a call
-- promised is not forgotten when the nurse is busy or the shift changes.
-- `raised_at` when it was put in the queue (`alert_id` the alert, NULL if
-- the stay had ended), or `cancelled_*` when a clinician took it back.
CREATE TABLE follow_ups (
    id            INTEGER PRIMARY KEY,
    patient_id    INTEGER NOT NULL REFERENCES patients(id),
    episode_id    INTEGER NOT NULL REFERENCES episodes(id),
    due_at        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    set_by        TEXT NOT NULL,
    set_at        TEXT NOT NULL,
    raised_at     TEXT,
    alert_id      INTEGER REFERENCES alerts(id),
    cancelled_by  TEXT,
    cancelled_at  TEXT
);
-- The timer's look-up of what is due, every second.
CREATE INDEX follow_ups_due ON follow_ups(due_at) WHERE raised_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX follow_ups_patient ON follow_ups(patient_id, due_at);
