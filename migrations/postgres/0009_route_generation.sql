-- A counter that moves whenever a device's route (the patient and ward its
-- readings are filed under) may have changed: any write to a device's
-- assignment or revocation, to an episode's admission or discharge, or to a
-- patient's ward. The ingest keeps the routes it has looked up and reads
-- only this counter for each batch; a new value makes it look them up again
-- (docs/decisions/0007-route-cache.md). Triggers, not the store's code, move
-- it, so that a write from anywhere (`vigil admin` in another process, a
-- second daemon, an operator's SQL) is seen.
CREATE TABLE route_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   BIGINT NOT NULL
);
INSERT INTO route_generation (id, n) VALUES (1, 0);

CREATE FUNCTION route_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE route_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER devices_route_insert_delete AFTER INSERT OR DELETE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION route_generation_bump();
CREATE TRIGGER devices_route_update AFTER UPDATE OF id, patient_id, revoked_at ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION route_generation_bump();
CREATE TRIGGER episodes_route_insert_delete AFTER INSERT OR DELETE ON episodes
    FOR EACH STATEMENT EXECUTE FUNCTION route_generation_bump();
CREATE TRIGGER episodes_route_update AFTER UPDATE OF patient_id, discharged_at ON episodes
    FOR EACH STATEMENT EXECUTE FUNCTION route_generation_bump();
CREATE TRIGGER patients_route_update AFTER UPDATE OF id, ward_id ON patients
    FOR EACH STATEMENT EXECUTE FUNCTION route_generation_bump();
CREATE TRIGGER patients_route_delete AFTER DELETE ON patients
    FOR EACH STATEMENT EXECUTE FUNCTION route_generation_bump();
