-- Vigil schema, PostgreSQL history. It mirrors migrations/sqlite step by step
-- in PostgreSQL's own dialect (docs/decisions/0004-postgres.md): identity
-- keys, timestamptz, booleans, bytea, jsonb and arrays instead of JSON text.
-- Text that queries sort by (device ids, observation codes) is COLLATE "C":
-- bytewise, as SQLite compares text, whatever the database's locale.

CREATE TABLE wards (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    role           text NOT NULL CHECK (role IN ('nurse', 'consultant', 'admin')),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE TABLE user_wards (
    user_id  bigint NOT NULL REFERENCES users(id),
    ward_id  bigint NOT NULL REFERENCES wards(id),
    PRIMARY KEY (user_id, ward_id)
);

-- Session cookies and API bearer tokens. Only a SHA-256 of the token is kept.
CREATE TABLE tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id),
    token_hash  text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('session', 'api')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE patients (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ward_id     bigint NOT NULL REFERENCES wards(id),
    name        text NOT NULL,
    nhs_number  text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX patients_ward ON patients(ward_id);

-- One virtual-ward stay. A patient has at most one open episode.
CREATE TABLE episodes (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id         bigint NOT NULL REFERENCES patients(id),
    pathway            text NOT NULL,
    spo2_scale         smallint NOT NULL DEFAULT 1 CHECK (spo2_scale IN (1, 2)),
    spo2_scale_set_by  text,
    spo2_scale_set_at  timestamptz,
    admitted_at        timestamptz NOT NULL,
    discharged_at      timestamptz
);
CREATE UNIQUE INDEX episodes_one_open ON episodes(patient_id) WHERE discharged_at IS NULL;
CREATE INDEX episodes_patient ON episodes(patient_id, admitted_at);

-- Device secrets are random 256-bit values; only their SHA-256 is kept.
CREATE TABLE devices (
    id             text COLLATE "C" PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('oximeter', 'bp-cuff', 'peak-flow', 'ecg-patch', 'hub')),
    mqtt_username  text NOT NULL UNIQUE,
    secret_hash    text NOT NULL,
    patient_id     bigint REFERENCES patients(id),
    created_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX devices_patient ON devices(patient_id) WHERE patient_id IS NOT NULL;

-- One row per accepted uplink message: the (device, seq) dedup key.
-- Sequence numbers are u32 on the wire; bigint holds them all.
CREATE TABLE obs_messages (
    device_id    text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL CHECK (seq BETWEEN 0 AND 4294967295),
    patient_id   bigint NOT NULL REFERENCES patients(id),
    measured_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, seq)
);

-- One row per observation code in a message. The write pattern is append
-- in roughly measurement order; every read is one patient's codes over a
-- time range, or the newest row per code (id breaks ties), so one
-- composite index serves both and no other secondary index is kept.
CREATE TABLE observations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES patients(id),
    device_id    text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL,
    code         text COLLATE "C" NOT NULL,
    value_num    double precision,
    value_text   text,
    unit         text,
    measured_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE INDEX observations_patient_code_time ON observations(patient_id, code, measured_at, id);

-- The dead-letter table: what was refused, why, and (for admins) the payload.
CREATE TABLE rejected_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    text COLLATE "C",
    seq          bigint,
    topic        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    payload      bytea,
    received_at  timestamptz NOT NULL
);
