-- Vigil schema, SQLite history. PostgreSQL keeps its own history under
-- migrations/postgres (the dialects differ; see docs/decisions/0002-store.md).
-- Times are stored as UTC text in one fixed format, so text order is time order.

CREATE TABLE wards (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('nurse', 'consultant', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE TABLE user_wards (
    user_id  INTEGER NOT NULL REFERENCES users(id),
    ward_id  INTEGER NOT NULL REFERENCES wards(id),
    PRIMARY KEY (user_id, ward_id)
);

-- Session cookies and API bearer tokens. Only a SHA-256 of the token is kept.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    token_hash  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);

CREATE TABLE patients (
    id          INTEGER PRIMARY KEY,
    ward_id     INTEGER NOT NULL REFERENCES wards(id),
    name        TEXT NOT NULL,
    nhs_number  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- One virtual-ward stay. A patient has at most one open episode.
CREATE TABLE episodes (
    id                 INTEGER PRIMARY KEY,
    patient_id         INTEGER NOT NULL REFERENCES patients(id),
    pathway            TEXT NOT NULL,
    spo2_scale         INTEGER NOT NULL DEFAULT 1 CHECK (spo2_scale IN (1, 2)),
    spo2_scale_set_by  TEXT,
    spo2_scale_set_at  TEXT,
    admitted_at        TEXT NOT NULL,
    discharged_at      TEXT
);
CREATE UNIQUE INDEX episodes_one_open ON episodes(patient_id) WHERE discharged_at IS NULL;

-- Device secrets are random 256-bit values; only their SHA-256 is kept.
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('oximeter', 'bp-cuff', 'peak-flow', 'ecg-patch', 'hub')),
    mqtt_username  TEXT NOT NULL UNIQUE,
    secret_hash    TEXT NOT NULL,
    patient_id     INTEGER REFERENCES patients(id),
    created_at     TEXT NOT NULL,
    revoked_at     TEXT
);

-- One row per accepted uplink message: the (device, seq) dedup key.
CREATE TABLE obs_messages (
    device_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    patient_id   INTEGER NOT NULL REFERENCES patients(id),
    measured_at  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);

-- One row per observation code in a message.
CREATE TABLE observations (
    id           INTEGER PRIMARY KEY,
    patient_id   INTEGER NOT NULL REFERENCES patients(id),
    device_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    code         TEXT NOT NULL,
    value_num    REAL,
    value_text   TEXT,
    unit         TEXT,
    measured_at  TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE INDEX observations_patient_code_time ON observations(patient_id, code, measured_at);

-- The dead-letter table: what was refused, why, and (for admins) the payload.
CREATE TABLE rejected_messages (
    id           INTEGER PRIMARY KEY,
    device_id    TEXT,
    seq          INTEGER,
    topic        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    payload      BLOB,
    received_at  TEXT NOT NULL
);
