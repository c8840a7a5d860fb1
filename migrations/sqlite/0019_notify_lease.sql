-- Which instance posts to the alert webhook, and until when (docs/
-- configuration.md, "Alert webhook"). Several instances may share one
-- database; each follows the same alert trail, and without this each
-- would post every event, so the on-call team would be paged once per
-- instance. The holder renews its lease three times a lapse
-- (`notify.takeover_after`); another instance takes it once it has
-- lapsed, or at once when the holder gives it up on a clean stop.
ALTER TABLE notify_progress ADD COLUMN holder TEXT;
ALTER TABLE notify_progress ADD COLUMN lease_until TEXT;
