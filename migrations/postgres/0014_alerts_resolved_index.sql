-- The handover's "resolved in the last 12 hours" (GET /api/v1/alerts/resolved)
-- reads a ward's alerts by the time they were resolved. Only resolved rows
-- are in it, so the worker's updates of live alerts never touch it.
CREATE INDEX alerts_ward_resolved ON alerts(ward_id, resolved_at) WHERE status = 'resolved';
