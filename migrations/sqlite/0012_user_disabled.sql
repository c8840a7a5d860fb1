-- Leavers (docs/security.md): an account is disabled, not
-- deleted (the audit trail names it), and a disabled account signs in to
-- nothing; `vigil admin user disable` also revokes its sessions and tokens.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
