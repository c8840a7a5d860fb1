//! Random secrets and their stored form.
//!
//! Device secrets, session ids and API tokens are 256-bit random values
//! shown once; the store keeps only their SHA-256. With that much entropy a
//! fast hash is a sound verifier (there is nothing to guess), unlike human
//! passwords, which get argon2id in the web layer.

use rand::RngCore;
use sha2::{Digest, Sha256};

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
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

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
