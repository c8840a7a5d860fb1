//! Administrative operations shared by the HTTP API and `vigil admin`:
//! admitting patients, provisioning devices, creating users and tokens.
//! Both front ends call these, so a rule (an NHS number check, a secret
//! shown once) cannot differ between them.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vigil_store::secrets::{
    MOSQUITTO_DEVICE_ITERATIONS, hash_secret, mosquitto_hash, random_id, random_secret,
};
use vigil_store::{NewDevice, NewPatient, NewToken, NewUser, Role, Store, StoreError, TokenKind};

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the records refuse it (an NHS number with
    /// an open admission); the message names what to do.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Device kinds of CONTRACTS.md §1.
pub const DEVICE_KINDS: [&str; 5] = ["oximeter", "bp-cuff", "peak-flow", "ecg-patch", "hub"];

/// Is `n` a valid NHS number: 10 digits whose last is the modulus-11 check
/// digit of the first nine (weights 10..2; 11 → 0; 10 → invalid)?
pub fn nhs_number_valid(n: &str) -> bool {
    let digits: Vec<u32> = n
        .chars()
        .filter(|c| !c.is_whitespace())
        .map_while(|c| c.to_digit(10))
        .collect();
    let clean: String = n.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 10 || clean.len() != 10 {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| d * w)
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == digits[9]
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// One of your wards, by name or id
    pub ward: String,
    /// Not empty
    pub name: String,
    /// 10 digits (spaces allowed) with a modulus-11 check digit
    #[schema(example = "943 476 5919")]
    pub nhs_number: String,
    /// A loaded pathway, e.g. `copd`
    pub pathway: String,
    /// SpO2 scale 1 (default) or 2 (hypercapnic respiratory failure)
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2)]
    pub spo2_scale: Option<u8>,
}

/// Admit a patient (creates the patient and their open episode).
pub async fn admit(
    store: &dyn Store,
    req: AdmitRequest,
    by: &str,
    now: DateTime<Utc>,
) -> Result<vigil_store::Admission, AdminError> {
    crate::text::check("ward", &req.ward, false).map_err(AdminError::Invalid)?;
    crate::text::check("name", &req.name, false).map_err(AdminError::Invalid)?;
    let ward = store
        .ward_find(&req.ward)
        .await?
        .ok_or_else(|| AdminError::Invalid(format!("ward: no ward {:?}", req.ward)))?;
    if req.name.trim().is_empty() {
        return Err(AdminError::Invalid("name: must not be empty".into()));
    }
    if !nhs_number_valid(&req.nhs_number) {
        return Err(AdminError::Invalid(
            "nhs_number: not a valid NHS number (10 digits, modulus 11)".into(),
        ));
    }
    if req.pathway.is_empty()
        || !req
            .pathway
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        return Err(AdminError::Invalid(
            "pathway: expected a pathway name like \"copd\"".into(),
        ));
    }
    let scale = req.spo2_scale.unwrap_or(1);
    if scale != 1 && scale != 2 {
        return Err(AdminError::Invalid("spo2_scale: must be 1 or 2".into()));
    }
    let admission = store
        .patient_admit(NewPatient {
            ward_id: ward.id,
            name: req.name.trim().to_string(),
            nhs_number: req
                .nhs_number
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
            pathway: req.pathway,
            spo2_scale: scale,
            spo2_scale_set_by: req.spo2_scale.map(|_| by.to_string()),
            admitted_at: now,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => AdminError::Conflict(m),
            other => other.into(),
        })?;
    Ok(admission)
}

/// Credentials of a newly provisioned device. The password is shown once.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProvisionedDevice {
    pub device_id: String,
    pub mqtt_username: String,
    pub mqtt_password: String,
}

/// Provision a device, optionally assigned to a patient.
pub async fn provision(
    store: &dyn Store,
    kind: &str,
    patient_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<ProvisionedDevice, AdminError> {
    if !DEVICE_KINDS.contains(&kind) {
        return Err(AdminError::Invalid(format!(
            "kind: expected one of {}",
            DEVICE_KINDS.join(", ")
        )));
    }
    let device_id = format!("{kind}-{}", random_id(12));
    let secret = random_secret();
    // The MQTT username is the device id: the broker's topic ACL compares
    // the topic's {device_id} with the authenticated username.
    store
        .device_provision(NewDevice {
            id: device_id.clone(),
            kind: kind.to_string(),
            mqtt_username: device_id.clone(),
            secret_hash: hash_secret(&secret),
            // For an external Mosquitto (`vigil admin mqtt export`): only
            // now, with the secret in hand, can its hash be computed.
            mosquitto_hash: Some(mosquitto_hash(&secret, MOSQUITTO_DEVICE_ITERATIONS)),
            patient_id: None,
            created_at: now,
        })
        .await?;
    if let Some(p) = patient_id {
        store.device_assign(&device_id, p).await?;
    }
    Ok(ProvisionedDevice {
        mqtt_username: device_id.clone(),
        device_id,
        mqtt_password: secret,
    })
}

/// Hash a human password with argon2id.
pub fn hash_password(password: &str) -> Result<String, AdminError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Invalid(format!("password: {e}")))
}

/// Check a password against its argon2id hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The one rule a password must meet here (the trust's own policy is its
/// identity provider's to enforce).
fn check_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < 8 {
        return Err(AdminError::Invalid(
            "password: at least 8 characters".into(),
        ));
    }
    Ok(())
}

/// Set an account's password (`vigil admin user password`): its sessions
/// end, so whoever knew the old one is signed out everywhere.
pub async fn set_password(
    store: &dyn Store,
    username: &str,
    password: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<vigil_store::CredentialsEnded, AdminError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    Ok(store.user_set_password(username, &hash, at).await?)
}

/// Wards by name or id, each once, in the order given; an unknown one is
/// an error naming it.
async fn find_wards(
    store: &dyn Store,
    wards: &[String],
) -> Result<Vec<vigil_store::Ward>, AdminError> {
    let mut found: Vec<vigil_store::Ward> = Vec::new();
    for w in wards {
        let ward = store
            .ward_find(w)
            .await?
            .ok_or_else(|| AdminError::Invalid(format!("ward: no ward {w:?}")))?;
        if !found.iter().any(|f| f.id == ward.id) {
            found.push(ward);
        }
    }
    Ok(found)
}

/// Give an account exactly these wards (names or ids; at least one): a
/// nurse who moves to another ward, or covers a second. Its open
/// dashboards are told within the stream's re-check, and its requests see
/// the new set at once. Returns the wards as now held.
pub async fn set_wards(
    store: &dyn Store,
    username: &str,
    wards: &[String],
) -> Result<Vec<vigil_store::Ward>, AdminError> {
    if wards.is_empty() {
        return Err(AdminError::Invalid("ward: give at least one".into()));
    }
    let found = find_wards(store, wards).await?;
    let ids: Vec<i64> = found.iter().map(|w| w.id).collect();
    store.user_set_wards(username, &ids).await?;
    Ok(found)
}

/// Give an account another role (`nurse`, `consultant` or `admin`); its
/// sessions end, so its dashboards sign in again as what it now is.
pub async fn set_role(
    store: &dyn Store,
    username: &str,
    role: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<vigil_store::CredentialsEnded, AdminError> {
    let role = Role::parse(role)
        .ok_or_else(|| AdminError::Invalid("role: expected nurse, consultant or admin".into()))?;
    Ok(store.user_set_role(username, role, at).await?)
}

/// Create a user with a role and wards (names or ids).
pub async fn add_user(
    store: &dyn Store,
    username: &str,
    role: &str,
    wards: &[String],
    password: &str,
) -> Result<i64, AdminError> {
    let role = Role::parse(role)
        .ok_or_else(|| AdminError::Invalid("role: expected nurse, consultant or admin".into()))?;
    crate::text::check("username", username, false).map_err(AdminError::Invalid)?;
    if username.is_empty() || username.len() > 64 {
        return Err(AdminError::Invalid("username: 1 to 64 characters".into()));
    }
    check_password(password)?;
    // Single sign-on matches a provider's name to an account whatever its
    // letter case, and takes neither of two that differ only in case: a
    // second such account would lock both out of it.
    if let Some(taken) = store.usernames_folded(username).await?.first() {
        return Err(AdminError::Conflict(format!(
            "username: {taken:?} is taken (usernames are told apart whatever their letter case)"
        )));
    }
    let ward_ids = find_wards(store, wards)
        .await?
        .iter()
        .map(|w| w.id)
        .collect();
    let password_hash = hash_password(password)?;
    Ok(store
        .user_add(NewUser {
            username: username.to_string(),
            role,
            password_hash,
            ward_ids,
        })
        .await?)
}

/// Issue a token for a user; returns the token, which is shown once.
pub async fn issue_token(
    store: &dyn Store,
    user_id: i64,
    kind: TokenKind,
    now: DateTime<Utc>,
    ttl: Option<chrono::Duration>,
) -> Result<String, AdminError> {
    issue_linked_token(store, user_id, kind, (now, ttl), None).await
}

/// [`issue_token`], for a session begun through single sign-on with the
/// provider's sign-in it came from (`sso`), which the provider may end.
pub async fn issue_linked_token(
    store: &dyn Store,
    user_id: i64,
    kind: TokenKind,
    (now, ttl): (DateTime<Utc>, Option<chrono::Duration>),
    sso: Option<vigil_store::SsoLink>,
) -> Result<String, AdminError> {
    let token = random_secret();
    store
        .token_insert(NewToken {
            user_id,
            token_hash: hash_secret(&token),
            kind,
            created_at: now,
            expires_at: ttl.map(|t| now + t),
            sso,
        })
        .await?;
    Ok(token)
}

/// The wards of `ids` that exist, with their names (what an admission
/// names as `ward`), in the order given.
pub async fn wards_of(
    store: &dyn Store,
    ids: &[i64],
) -> Result<Vec<vigil_store::Ward>, StoreError> {
    let mut wards = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(w) = store.ward_find(&id.to_string()).await? {
            wards.push(w);
        }
    }
    Ok(wards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_are_checked_by_modulus_11() {
        // 943 476 5919 is the NHS Data Dictionary's worked example.
        assert!(nhs_number_valid("9434765919"));
        assert!(nhs_number_valid("943 476 5919"));
        assert!(!nhs_number_valid("9434765918"));
        assert!(!nhs_number_valid("943476591"));
        assert!(!nhs_number_valid("94347659190"));
        assert!(!nhs_number_valid("94347659x9"));
        // 000000006 weighs 6 x 2 = 12, remainder 1, check digit 10: no last
        // digit can make it valid.
        for last in 0..=9 {
            assert!(!nhs_number_valid(&format!("000000006{last}")));
        }
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
