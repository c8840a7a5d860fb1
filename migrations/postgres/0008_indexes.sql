-- A patient's alerts, without reading the whole ward's: the ingest asks for
-- one patient's live alerts whenever a rule may fire or resolve; with only
-- (ward_id, status) that read every alert the ward ever had
-- (docs/benchmarks.md). (SQLite's 0008 also adds the devices and episodes
-- indexes PostgreSQL has had since 0001.)
CREATE INDEX alerts_patient ON alerts(patient_id, id);
