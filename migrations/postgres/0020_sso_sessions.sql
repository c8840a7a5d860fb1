-- Which sign-in at the trust's provider a dashboard session came from
-- (docs/configuration.md, "Single sign-on"): the ID token's subject and,
-- when the provider gives one, its session id (`sid`). When the provider
-- ends that sign-in (a smartcard pulled out, a sign-out in another
-- application) it says so to Vigil's back-channel logout endpoint
-- (OpenID Connect Back-Channel Logout 1.0), and the sessions it names
-- are revoked. Password sessions and API tokens have neither.
ALTER TABLE tokens ADD COLUMN sso_sub text;
ALTER TABLE tokens ADD COLUMN sso_sid text;
CREATE INDEX tokens_sso_sub ON tokens (sso_sub) WHERE sso_sub IS NOT NULL;
CREATE INDEX tokens_sso_sid ON tokens (sso_sid) WHERE sso_sid IS NOT NULL;
