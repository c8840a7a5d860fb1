-- Each device's last status message (`vigil/v1/dev/{id}/status`, docs/mqtt.md
-- "status"), so a page opened later still shows battery and signal. One row per
-- device, replaced by every new report; the message carries no time of its
-- own, so `reported_at` is when Vigil received it. A field the message left
-- out is NULL (unknown), not the previous report's value.
CREATE TABLE device_status (
    device_id    TEXT PRIMARY KEY REFERENCES devices(id),
    online       INTEGER NOT NULL CHECK (online IN (0, 1)),
    battery_pct  INTEGER CHECK (battery_pct BETWEEN 0 AND 100),
    signal       TEXT CHECK (signal IN ('ok', 'poor', 'lead_off')),
    fw           TEXT,
    reported_at  TEXT NOT NULL
);
