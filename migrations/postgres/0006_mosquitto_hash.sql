-- The device secret hashed for Mosquitto's password file (`vigil admin mqtt
-- export`, docs/security.md): `$7$<iterations>$<salt>$<hash>`, PBKDF2-HMAC-
-- SHA512. Only the secret's holder can compute it, so it is recorded at
-- provisioning; devices provisioned before this migration have none and are
-- left out of the export until re-provisioned.
ALTER TABLE devices ADD COLUMN mosquitto_hash text;
