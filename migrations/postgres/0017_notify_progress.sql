-- How far the alert webhook (docs/configuration.md, "Alert webhook") has
-- got through the alert trail: every alert event with an id at or below
-- event_id has been posted, or passed over as not wanted or too old. The
-- notifier moves it after each post, so a restart neither posts an event
-- twice (beyond the one in flight) nor misses one. No row: the webhook has
-- never run, and its first start begins at the newest event, not with the
-- whole history.
CREATE TABLE notify_progress (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    event_id  BIGINT NOT NULL
);
