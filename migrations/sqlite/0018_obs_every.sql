-- How often a clinician wants this stay's observations, in minutes, in
-- place of the pathway's [[expect]] intervals ("4-hourly obs" for a
-- patient who is worse), with who set it and when. NULL: the pathway's.
ALTER TABLE episodes ADD COLUMN obs_every_min INTEGER;
ALTER TABLE episodes ADD COLUMN obs_every_set_by TEXT;
ALTER TABLE episodes ADD COLUMN obs_every_set_at TEXT;
