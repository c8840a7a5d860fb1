-- Indexes for the ingest's per-patient look-ups, found by timing every
-- statement of a 3,000-patient `devsim bench` (docs/benchmarks.md).
--
-- A patient's alerts, without reading the whole ward's: the ingest asks for
-- one patient's live alerts whenever a rule may fire or resolve; with only
-- (ward_id, status) that read every alert the ward ever had.
CREATE INDEX alerts_patient ON alerts(patient_id, id);
-- A patient's devices and latest episode (GET /api/v1/patients/{id}, and the
-- rules engine's first sight of a patient): PostgreSQL has had these since
-- 0001; without them SQLite read every device (3 ms a patient at 3,000
-- patients) and every episode.
CREATE INDEX devices_patient ON devices(patient_id) WHERE patient_id IS NOT NULL;
CREATE INDEX episodes_patient ON episodes(patient_id, admitted_at);
