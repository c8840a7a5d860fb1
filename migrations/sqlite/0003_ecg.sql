-- ECG patch data (docs/ecg.md "Storage").

-- One row per received chunk. `samples` holds the i16 samples encoded by
-- vigil_ecg::encode_samples (lossless; its name is in `encoding`, see docs/ecg.md); the
-- (device_id, seq) key is the same dedup key as observation messages.
CREATE TABLE ecg_chunks (
    device_id     TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    patient_id    INTEGER NOT NULL REFERENCES patients(id),
    t0_ms         INTEGER NOT NULL,
    fs_hz         INTEGER NOT NULL,
    uv_per_count  REAL NOT NULL,
    n_samples     INTEGER NOT NULL,
    encoding      TEXT NOT NULL,
    samples       BLOB NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX ecg_chunks_patient_time ON ecg_chunks(patient_id, t0_ms);

-- Beats the streaming detector found, for strips and review.
CREATE TABLE ecg_beats (
    device_id   TEXT NOT NULL,
    t_ms        INTEGER NOT NULL,
    patient_id  INTEGER NOT NULL REFERENCES patients(id),
    rr_ms       INTEGER,
    PRIMARY KEY (device_id, t_ms)
);
CREATE INDEX ecg_beats_patient_time ON ecg_beats(patient_id, t_ms);
