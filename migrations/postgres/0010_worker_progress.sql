-- How far the scoring worker has got through what the intake stored. Every
-- observation of an uplink message with an id at or below observation_id
-- has been through a worker pass: scored, seen by the pathway rules, its
-- alerts stored. The worker moves it in the transaction that stores a
-- pass's scores and alerts. At start it takes up the observations above it:
-- readings stored and acked by a daemon that stopped (or crashed) before
-- scoring them, which would otherwise never raise their alerts
-- (docs/decisions/0006-ingest-stages.md, hazard AL-19). A database from
-- before this table starts from its newest observation, as the daemon that
-- wrote it left it.
CREATE TABLE worker_progress (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    observation_id  BIGINT NOT NULL
);
INSERT INTO worker_progress (id, observation_id)
    SELECT 1, COALESCE(MAX(id), 0) FROM observations;
