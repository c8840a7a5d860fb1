-- How far the worker's ECG analysis has got, per patch: every chunk of the
-- device with a seq at or below this has been through a worker pass
-- (analysed; its heart rate stored and scored, its quality and possible-AF
-- changes told). The worker moves it in the transaction that stores the
-- pass's scores and alerts, beside worker_progress. At start it analyses
-- each patch's chunks above it: chunks stored and acked by a daemon that
-- stopped (or crashed) before analysing them, whose heart rates would
-- otherwise never be derived nor scored (hazard TS-24). A database from
-- before this table starts from each patch's newest chunk, as the daemon
-- that wrote it left it.
CREATE TABLE ecg_progress (
    device_id  text COLLATE "C" PRIMARY KEY,
    seq        bigint NOT NULL
);
INSERT INTO ecg_progress (device_id, seq)
    SELECT device_id, MAX(seq) FROM ecg_chunks GROUP BY device_id;
