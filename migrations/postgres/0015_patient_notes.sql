-- What a clinician writes on a patient's record: a call, the advice given,
-- the plan. Append-only, as a clinical record is: a note is corrected by a
-- new note, never edited or deleted.
CREATE TABLE patient_notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES patients(id),
    at          timestamptz NOT NULL,
    author      text NOT NULL,
    text        text NOT NULL
);
CREATE INDEX patient_notes_patient ON patient_notes(patient_id, id);
-- The handover's notes of the last hours on a ward (GET /api/v1/patients/notes).
CREATE INDEX patient_notes_at ON patient_notes(at);

CREATE FUNCTION patient_notes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'patient_notes is append-only';
END;
$$;
CREATE TRIGGER patient_notes_no_update_delete BEFORE UPDATE OR DELETE ON patient_notes
    FOR EACH ROW EXECUTE FUNCTION patient_notes_append_only();
CREATE TRIGGER patient_notes_no_truncate BEFORE TRUNCATE ON patient_notes
    FOR EACH STATEMENT EXECUTE FUNCTION patient_notes_append_only();
