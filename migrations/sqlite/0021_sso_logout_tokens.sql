-- Logout tokens the provider sent to the back-channel logout endpoint
-- (OpenID Connect Back-Channel Logout 1.0 §2.6: "jti" lets the relying
-- party refuse a token used again), each kept until it would have
-- expired. In the database, not one instance's memory, so that every
-- instance sharing it, and an instance after a restart, refuses a token
-- any of them took (hazard DB-22). Rows past `expires_at` are deleted as
-- new tokens arrive.
CREATE TABLE sso_logout_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX sso_logout_tokens_expiry ON sso_logout_tokens (expires_at);
