-- Live NEWS2 scoring (docs/clinical.md "Partial scoring").

-- Clinician-entered (or patient-reported) episode facts that NEWS2 needs and
-- home devices cannot measure, each with who recorded it and when.
ALTER TABLE episodes
    ADD COLUMN oxygen        boolean,            -- true on supplemental O2, false on air, NULL unknown
    ADD COLUMN oxygen_set_by text,
    ADD COLUMN oxygen_set_at timestamptz,
    ADD COLUMN acvpu         text CHECK (acvpu IN ('A', 'C', 'V', 'P', 'U')),
    ADD COLUMN acvpu_set_by  text,
    ADD COLUMN acvpu_set_at  timestamptz,
    ADD COLUMN under_16      boolean NOT NULL DEFAULT false,
    ADD COLUMN pregnant      boolean NOT NULL DEFAULT false;

-- One row per computed score. `scored_at` is the measurement time the score
-- describes (not when it was computed): a late reading adds history at its
-- own time instead of pretending to be current.
CREATE TABLE scores (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES patients(id),
    scored_at    timestamptz NOT NULL,
    computed_at  timestamptz NOT NULL,
    total        bigint,                  -- NULL when not applicable
    risk         text,
    partial      boolean NOT NULL,
    detail       jsonb NOT NULL,          -- the full result (sub-scores, missing, stale, reasons)
    obs_ids      bigint[] NOT NULL        -- the observation ids used
);
CREATE INDEX scores_patient_time ON scores(patient_id, scored_at);
