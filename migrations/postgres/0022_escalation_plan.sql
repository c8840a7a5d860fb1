-- The stay's treatment escalation plan as a clinician recorded it: where
-- the patient is to be cared for if they deteriorate ('hospital', 'home'
-- or 'comfort'), its details in words, and who recorded it and when.
-- NULL plan: none recorded (set_by/set_at then say who cleared it, if
-- anyone did). Per episode: a patient admitted again starts with none.
ALTER TABLE episodes ADD COLUMN escalation_plan text;
ALTER TABLE episodes ADD COLUMN escalation_note text;
ALTER TABLE episodes ADD COLUMN escalation_set_by text;
ALTER TABLE episodes ADD COLUMN escalation_set_at timestamptz;
