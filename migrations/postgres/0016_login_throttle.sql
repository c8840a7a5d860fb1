-- The sign-in throttle counts failed sign-ins from the audit trail, where
-- every one is already written, so that every instance sharing the
-- database counts the same ones and a restart forgets none (docs/security.md).
-- Only sign-in rows are in these indexes: the reads and actions that make up
-- the rest of the trail never touch them.
CREATE INDEX audit_log_login_failed ON audit_log(username, at) WHERE action = 'login.failed';
CREATE INDEX audit_log_login_failed_addr ON audit_log(addr, at) WHERE action = 'login.failed';
CREATE INDEX audit_log_login ON audit_log(username, at) WHERE action = 'login';
