-- ECG patch data (docs/ecg.md "Storage").

-- One row per received chunk. `samples` holds the i16 samples encoded by
-- vigil_ecg::encode_samples (lossless; its name is in `encoding`, see docs/ecg.md); the
-- (device_id, seq) key is the same dedup key as observation messages.
CREATE TABLE ecg_chunks (
    device_id     text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
    patient_id    bigint NOT NULL REFERENCES patients(id),
    t0_ms         bigint NOT NULL,
    fs_hz         integer NOT NULL CHECK (fs_hz > 0),
    uv_per_count  real NOT NULL,
    n_samples     bigint NOT NULL CHECK (n_samples >= 0),
    encoding      text NOT NULL,
    samples       bytea NOT NULL,
    received_at   timestamptz NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX ecg_chunks_patient_time ON ecg_chunks(patient_id, t0_ms);
-- Retention deletes by time across all patients.
CREATE INDEX ecg_chunks_time ON ecg_chunks(t0_ms);

-- Beats the streaming detector found, for strips and review.
CREATE TABLE ecg_beats (
    device_id   text COLLATE "C" NOT NULL,
    t_ms        bigint NOT NULL,
    patient_id  bigint NOT NULL REFERENCES patients(id),
    rr_ms       bigint,
    PRIMARY KEY (device_id, t_ms)
);
CREATE INDEX ecg_beats_patient_time ON ecg_beats(patient_id, t_ms);
