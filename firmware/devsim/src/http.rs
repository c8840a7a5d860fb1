//! Admitting patients and provisioning devices through Vigil's HTTP API
//! (docs/http.md), as an admin with a bearer token.

use serde_json::{Value, json};

/// Credentials of a provisioned device.
#[derive(Debug, Clone)]
pub struct DeviceCreds {
    /// Device id.
    pub device_id: String,
    /// MQTT username.
    pub username: String,
    /// MQTT password (shown once by Vigil).
    pub password: String,
}

/// An HTTP API client.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

/// API errors.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Network or protocol failure.
    #[error("{what}: {source}")]
    Http {
        /// The call.
        what: &'static str,
        /// The cause.
        source: reqwest::Error,
    },
    /// Vigil answered with an error.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// The call.
        what: &'static str,
        /// The status.
        status: u16,
        /// The error body.
        body: String,
    },
    /// An answer without the expected field.
    #[error("{what}: unexpected answer {body}")]
    Shape {
        /// The call.
        what: &'static str,
        /// The body.
        body: String,
    },
}

impl Api {
    /// A client for Vigil at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: &str) -> anyhow::Result<Api> {
        Api::with_tls(base, token, None)
    }

    /// A client for Vigil at `base`, over HTTPS trusting `tls`'s roots
    /// (`https://vigil.example:8443`).
    pub fn with_tls(
        base: &str,
        token: &str,
        tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    ) -> anyhow::Result<Api> {
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            // Vigil closes a connection idle for 10 s: the client never
            // reuses one that may be closing (docs/http.md, "Connections").
            client: crate::tls::http_client(tls)?,
        })
    }

    async fn post(&self, what: &'static str, path: &str, body: Value) -> Result<Value, ApiError> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|source| ApiError::Http { what, source })?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|source| ApiError::Http { what, source })?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Status {
                what,
                status,
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|_| ApiError::Shape { what, body: text })
    }

    async fn get(&self, what: &'static str, path: &str) -> Result<Value, ApiError> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ApiError::Http { what, source })?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|source| ApiError::Http { what, source })?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Status {
                what,
                status,
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|_| ApiError::Shape { what, body: text })
    }

    /// Patients with a stored alert of `rule` (any status).
    pub async fn alerted_patients(
        &self,
        rule: &str,
    ) -> Result<std::collections::HashSet<i64>, ApiError> {
        let all = self.get("alerts", "/api/v1/alerts").await?;
        Ok(all
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["rule_id"] == rule)
                    .filter_map(|x| x["patient_id"].as_i64())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Admits a patient; returns the patient id.
    pub async fn admit(
        &self,
        ward: &str,
        name: &str,
        nhs_number: &str,
        pathway: &str,
    ) -> Result<i64, ApiError> {
        let v = self
            .post(
                "admitting a patient",
                "/api/v1/patients",
                json!({"ward": ward, "name": name, "nhs_number": nhs_number, "pathway": pathway}),
            )
            .await?;
        v["id"].as_i64().ok_or_else(|| ApiError::Shape {
            what: "admitting a patient",
            body: v.to_string(),
        })
    }

    /// Admits a simulated patient under a test-range NHS number, from
    /// `nhs_number` on: Vigil admits a person once at a time (409 while a
    /// patient with the number is admitted, as after an earlier run on the
    /// same ward), so a number in use moves to the next one.
    pub async fn admit_simulated(
        &self,
        ward: &str,
        name: &str,
        nhs_number: &str,
        pathway: &str,
    ) -> Result<i64, ApiError> {
        let mut nhs = nhs_number.to_string();
        for _ in 0..50 {
            match self.admit(ward, name, &nhs, pathway).await {
                Err(ApiError::Status { status: 409, .. }) => {
                    nhs = crate::nhs::next_test_number(&nhs)
                }
                done => return done,
            }
        }
        self.admit(ward, name, &nhs, pathway).await
    }

    /// Provisions a device of `kind` for `patient`.
    pub async fn provision(&self, kind: &str, patient: i64) -> Result<DeviceCreds, ApiError> {
        let what = "provisioning a device";
        let v = self
            .post(
                what,
                "/api/v1/devices",
                json!({"kind": kind, "patient_id": patient}),
            )
            .await?;
        let s = |k: &str| {
            v[k].as_str()
                .map(String::from)
                .ok_or_else(|| ApiError::Shape {
                    what,
                    body: v.to_string(),
                })
        };
        Ok(DeviceCreds {
            device_id: s("device_id")?,
            username: s("mqtt_username")?,
            password: s("mqtt_password")?,
        })
    }
}
