//! Random secrets and their stored form.
//!
//! Device secrets, session ids and API tokens are 256-bit random values
//! shown once; the store keeps only their SHA-256. With that much entropy a
//! fast hash is a sound verifier (there is nothing to guess), unlike human
//! passwords, which get argon2id in the web layer.
//!
//! An external Mosquitto cannot use that SHA-256: its password file wants its
//! own `$7$` PBKDF2-HMAC-SHA512 form ([`mosquitto_hash`]), which only the
//! secret's holder can compute, so provisioning records it too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};

/// A fresh 256-bit secret, hex encoded (64 characters).
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A short random id suffix (`len` lowercase hex characters).
pub fn random_id(len: usize) -> String {
    let mut b = vec![0u8; len.div_ceil(2)];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let mut s = hex::encode(b);
    s.truncate(len);
    s
}

/// Hex SHA-256: the stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compare two strings in time independent of where they differ.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// PBKDF2 iterations for a device secret in Mosquitto's password file.
///
/// Ten times Mosquitto 2.x's default of 101. The count does not protect a
/// device secret: 256 random bits cannot be guessed however fast the hash.
/// It does cost the broker, which runs PBKDF2 on its single event-loop
/// thread at every CONNECT: about 1.4 ms at 1,000 (OpenSSL's PBKDF2 on the
/// project's 2-core development machine), so a ward of 1,000 kits
/// reconnecting after a broker restart stalls it for about 1.4 s, where
/// 210,000 iterations would stall it for over four minutes.
pub const MOSQUITTO_DEVICE_ITERATIONS: u32 = 1_000;

/// PBKDF2 iterations for the ingest's own account, whose password an
/// operator chooses and may be guessable: OWASP's figure for
/// PBKDF2-HMAC-SHA512. One connection, so the cost is paid once.
pub const MOSQUITTO_SERVICE_ITERATIONS: u32 = 210_000;

/// Salt length of Mosquitto's own `mosquitto_passwd` (12 bytes).
const MOSQUITTO_SALT_LEN: usize = 12;

/// Mosquitto 2.x password-file hash of `secret` with a fresh random salt:
/// `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512, 64 bytes>`.
pub fn mosquitto_hash(secret: &str, iterations: u32) -> String {
    let mut salt = [0u8; MOSQUITTO_SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    mosquitto_hash_with_salt(secret, &salt, iterations)
}

/// [`mosquitto_hash`] with a given salt (for tests against known vectors).
pub fn mosquitto_hash_with_salt(secret: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(secret.as_bytes(), salt, iterations, &mut out);
    format!(
        "$7${iterations}${}${}",
        BASE64.encode(salt),
        BASE64.encode(out)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_sha512_matches_a_known_vector() {
        // PBKDF2-HMAC-SHA512("password", "salt", 1 iteration), 64 bytes.
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"password", b"salt", 1, &mut out);
        assert_eq!(
            hex::encode(out),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
             c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
        );
    }

    #[test]
    fn mosquitto_hash_reproduces_mosquitto_passwd() {
        // `mosquitto_passwd -c -b pw dev-a secretpass` (Mosquitto 2.0.11) wrote
        // this line; the same salt must give the same hash.
        let line = "dev-a:$7$101$cEomMxZpZmHO9+y3$2TAKAPiuAjjUv2YYguJJkI47qE/capmN1rWBfnP1QllZaWsCSZQ5+oDThVUWp2MY8OeAbn62qjdHfRSWYsiqcg==";
        let salt = BASE64.decode("cEomMxZpZmHO9+y3").expect("base64");
        assert_eq!(
            format!(
                "dev-a:{}",
                mosquitto_hash_with_salt("secretpass", &salt, 101)
            ),
            line
        );
    }

    #[test]
    fn mosquitto_hashes_are_salted_and_carry_their_iterations() {
        let (a, b) = (
            mosquitto_hash("s", MOSQUITTO_DEVICE_ITERATIONS),
            mosquitto_hash("s", MOSQUITTO_DEVICE_ITERATIONS),
        );
        assert_ne!(a, b, "a fresh salt each time");
        let parts: Vec<&str> = a.split('$').collect();
        assert_eq!(parts.len(), 5, "{a}");
        assert_eq!((parts[0], parts[1], parts[2]), ("", "7", "1000"));
        assert_eq!(BASE64.decode(parts[3]).expect("salt").len(), 12);
        assert_eq!(BASE64.decode(parts[4]).expect("hash").len(), 64);
    }

    #[test]
    fn secrets_are_long_random_and_hash_stably() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), a);
        assert!(ct_eq(&a, &a.clone()) && !ct_eq(&a, &b) && !ct_eq("a", "ab"));
    }
}
