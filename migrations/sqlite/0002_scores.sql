-- Live NEWS2 scoring (docs/clinical.md "Partial scoring").

-- Clinician-entered (or patient-reported) episode facts that NEWS2 needs and
-- home devices cannot measure, each with who recorded it and when.
ALTER TABLE episodes ADD COLUMN oxygen INTEGER;            -- 1 on supplemental O2, 0 on air, NULL unknown
ALTER TABLE episodes ADD COLUMN oxygen_set_by TEXT;
ALTER TABLE episodes ADD COLUMN oxygen_set_at TEXT;
ALTER TABLE episodes ADD COLUMN acvpu TEXT CHECK (acvpu IN ('A', 'C', 'V', 'P', 'U'));
ALTER TABLE episodes ADD COLUMN acvpu_set_by TEXT;
ALTER TABLE episodes ADD COLUMN acvpu_set_at TEXT;
ALTER TABLE episodes ADD COLUMN under_16 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE episodes ADD COLUMN pregnant INTEGER NOT NULL DEFAULT 0;

-- One row per computed score. `scored_at` is the measurement time the score
-- describes (not when it was computed): a late reading adds history at its
-- own time instead of pretending to be current.
CREATE TABLE scores (
    id           INTEGER PRIMARY KEY,
    patient_id   INTEGER NOT NULL REFERENCES patients(id),
    scored_at    TEXT NOT NULL,
    computed_at  TEXT NOT NULL,
    total        INTEGER,                 -- NULL when not applicable
    risk         TEXT,
    partial      INTEGER NOT NULL,
    detail       TEXT NOT NULL,           -- the full result as JSON (sub-scores, missing, stale, reasons)
    obs_ids      TEXT NOT NULL            -- JSON array of the observation ids used
);
CREATE INDEX scores_patient_time ON scores(patient_id, scored_at);
