-- What a clinician writes on a patient's record: a call, the advice given,
-- the plan. Append-only, as a clinical record is: a note is corrected by a
-- new note, never edited or deleted.
CREATE TABLE patient_notes (
    id          INTEGER PRIMARY KEY,
    patient_id  INTEGER NOT NULL REFERENCES patients(id),
    at          TEXT NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX patient_notes_patient ON patient_notes(patient_id, id);
-- The handover's notes of the last hours on a ward (GET /api/v1/patients/notes).
CREATE INDEX patient_notes_at ON patient_notes(at);
CREATE TRIGGER patient_notes_no_update BEFORE UPDATE ON patient_notes
BEGIN SELECT RAISE(ABORT, 'patient_notes is append-only'); END;
CREATE TRIGGER patient_notes_no_delete BEFORE DELETE ON patient_notes
BEGIN SELECT RAISE(ABORT, 'patient_notes is append-only'); END;
