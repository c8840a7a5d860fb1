-- One open admission per NHS number (hazard TS-22): an admission looks up
-- the open episodes of the patients with the new patient's NHS number.
-- Not unique: a patient discharged and admitted again has a record per
-- admission, and databases from before this check may hold two open ones.
CREATE INDEX patients_nhs_number ON patients(nhs_number);
