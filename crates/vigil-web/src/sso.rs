//! Single sign-on: staff sign in through the trust's OpenID Connect
//! provider (Microsoft Entra ID, NHS CIS2, Keycloak…) instead of a Vigil
//! password (docs/security.md, "Single sign-on").
//!
//! The authorization-code flow with PKCE, as a confidential client:
//! 1. `GET /api/v1/auth/sso/login` sends the browser to the provider with a
//!    fresh `state`, `nonce` and PKCE challenge, remembered in a short-lived
//!    cookie scoped to these routes.
//! 2. The provider sends it back to `GET /api/v1/auth/sso/callback` with a
//!    code; Vigil checks `state` against the cookie, exchanges the code
//!    (with its client secret and the PKCE verifier) for an ID token, and
//!    checks the token: signed by a key of the provider's JWKS, issuer,
//!    audience, expiry, and the `nonce`.
//! 3. The token's username claim names the Vigil account. The account must
//!    exist and not be disabled: the provider proves who someone is, while
//!    their role and wards stay Vigil's, given by an admin. A session then
//!    starts exactly as after a password sign-in.
//!
//! Nothing of the provider is fetched at start (a provider that is down
//! must not stop a ward's monitoring): its discovery document and keys are
//! read at the first sign-in, kept an hour, and the keys read again when a
//! token names one not yet seen (a key rotation).

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::AppState;
use vigil_store::SsoLink;

/// The cookie holding a sign-in's `state`, `nonce` and PKCE verifier
/// between the two legs of the flow.
pub const FLOW_COOKIE: &str = "vigil_sso";

/// Where the provider sends the browser back to.
pub const CALLBACK_PATH: &str = "/api/v1/auth/sso/callback";

/// How long the provider may take (the user typing their password there).
pub const FLOW_MAX_AGE_SECS: u64 = 600;

/// How long the provider's discovery document and keys are kept.
const PROVIDER_TTL: Duration = Duration::from_secs(3600);

/// The least time between two reads of the keys for an unknown key id, so
/// forged tokens with made-up ids cannot make Vigil hammer the provider.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);

/// Clock difference allowed between Vigil and the provider.
const LEEWAY_SECS: u64 = 60;

/// The signature algorithms an ID token may use: the provider's public
/// keys only (never `HS*`, which would sign with the client secret, nor
/// `none`).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The `[sso]` section, checked (the daemon's config builds it).
#[derive(Clone, Debug)]
pub struct SsoSettings {
    /// The provider's issuer identifier; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// This callback as the browser reaches it:
    /// `https://vigil.example.nhs.uk/api/v1/auth/sso/callback`.
    pub redirect_url: String,
    /// The ID-token claim holding the Vigil username.
    pub username_claim: String,
    /// Scopes asked for (`openid` always among them).
    pub scopes: String,
    /// The button's words: "Sign in with {label}".
    pub label: String,
    /// OpenID Connect's `prompt` for every sign-in (`login`: the provider
    /// asks again each time, for shared computers).
    pub prompt: Option<String>,
    /// Signing out of Vigil after a single sign-on goes on to the
    /// provider's sign-out ([`Sso::sign_out_url`]).
    pub sign_out_provider: bool,
}

/// Why a sign-in through the provider did not start a session: the code the
/// dashboard is sent back with (`/?sso_error=…`), which it explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsoFailure {
    /// The user cancelled at the provider, or it refused them.
    Cancelled,
    /// The flow's cookie is missing, expired or for another sign-in.
    Expired,
    /// The provider could not be reached or answered wrongly.
    Provider,
    /// The ID token failed a check (signature, issuer, audience, expiry,
    /// nonce) or has no username.
    Refused,
    /// No Vigil account has that username, or it is disabled.
    NoAccount,
}

impl SsoFailure {
    pub fn code(self) -> &'static str {
        match self {
            SsoFailure::Cancelled => "cancelled",
            SsoFailure::Expired => "expired",
            SsoFailure::Provider => "provider",
            SsoFailure::Refused => "refused",
            SsoFailure::NoAccount => "no-account",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    /// OpenID Connect RP-Initiated Logout 1.0: where to send the browser
    /// to sign out at the provider; not every provider has one.
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

struct Provider {
    discovery: Discovery,
    jwks: JwkSet,
    fetched: Instant,
    jwks_fetched: Instant,
}

/// The relying party: settings, an HTTP client for the provider, and what
/// was read of it.
pub struct Sso {
    settings: SsoSettings,
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<Provider>>,
    /// [`JWKS_REFRESH_MIN`], but for tests.
    keys_refresh_min: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(String);

impl Sso {
    /// `http` should not follow redirects, and trusts what the provider's
    /// certificate needs (`sso.ca_file` or the system's store).
    pub fn new(settings: SsoSettings, http: reqwest::Client) -> Sso {
        Sso {
            settings,
            http,
            provider: tokio::sync::Mutex::new(None),
            keys_refresh_min: JWKS_REFRESH_MIN,
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, ProviderError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ProviderError(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(ProviderError(format!("{url}: {}", resp.status())));
        }
        resp.json()
            .await
            .map_err(|e| ProviderError(format!("{url}: {e}")))
    }

    /// The provider's endpoints, read (again) when unknown or an hour old.
    async fn discovery(&self) -> Result<Discovery, ProviderError> {
        let mut held = self.provider.lock().await;
        if let Some(p) = held.as_ref()
            && p.fetched.elapsed() < PROVIDER_TTL
        {
            return Ok(p.discovery.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url).await?;
        // OpenID Connect Discovery §4.3: the document must name the issuer
        // it was fetched for, or tokens could be checked against another's.
        if discovery.issuer != self.settings.issuer {
            return Err(ProviderError(format!(
                "discovery names issuer {:?}, not sso.issuer",
                discovery.issuer
            )));
        }
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let now = Instant::now();
        *held = Some(Provider {
            discovery: discovery.clone(),
            jwks,
            fetched: now,
            jwks_fetched: now,
        });
        Ok(discovery)
    }

    /// The key the provider signs with under `kid` (any of its keys when
    /// the token names none), reading the keys again once for one not seen.
    async fn key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, ProviderError> {
        // A key published for encryption (`use: enc`) signs nothing.
        let find = |set: &JwkSet| {
            set.keys
                .iter()
                .filter(|k| {
                    !matches!(
                        k.common.public_key_use,
                        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
                    )
                })
                .find(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
                .and_then(|k| DecodingKey::from_jwk(k).ok())
        };
        // Nothing read of the provider yet (no sign-in on this instance
        // since it started): a logout token may be the first thing it is
        // sent, after a restart or behind a load balancer.
        self.discovery().await?;
        let mut held = self.provider.lock().await;
        let Some(p) = held.as_mut() else {
            return Ok(None);
        };
        if let Some(k) = find(&p.jwks) {
            return Ok(Some(k));
        }
        if p.jwks_fetched.elapsed() < self.keys_refresh_min {
            return Ok(None);
        }
        let uri = p.discovery.jwks_uri.clone();
        p.jwks_fetched = Instant::now();
        drop(held);
        let jwks: JwkSet = self.get_json(&uri).await?;
        let found = find(&jwks);
        if let Some(p) = self.provider.lock().await.as_mut() {
            p.jwks = jwks;
        }
        Ok(found)
    }

    /// Where to send the browser to sign in, and the flow's cookie value.
    /// `place`: where in the dashboard to return to ([`dashboard_place`]).
    pub async fn start(&self, place: &str) -> Result<(String, String), ProviderError> {
        let d = self.discovery().await?;
        let flow = Flow::new(place);
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|e| ProviderError(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_url)
            .append_pair("scope", &self.settings.scopes)
            .append_pair("state", &flow.state)
            .append_pair("nonce", &flow.nonce)
            .append_pair("code_challenge", &flow.challenge())
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = &self.settings.prompt {
            url.query_pairs_mut().append_pair("prompt", p);
        }
        Ok((url.to_string(), flow.to_cookie()))
    }

    /// Exchange `code` and check the ID token; the username it names, and
    /// the token (a hint for the provider's sign-out).
    pub async fn finish(&self, code: &str, flow: &Flow) -> Result<SignedIn, SsoFailure> {
        let d = self.discovery().await.map_err(|e| {
            tracing::warn!(error = %e, "sso: provider unavailable");
            SsoFailure::Provider
        })?;
        let resp = self
            .http
            .post(&d.token_endpoint)
            .basic_auth(&self.settings.client_id, Some(&self.settings.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.settings.redirect_url),
                ("code_verifier", &flow.verifier),
            ])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "sso: token endpoint unreachable");
                SsoFailure::Provider
            })?;
        if !resp.status().is_success() {
            // A code used twice, expired, or a wrong client secret.
            tracing::warn!(status = %resp.status(), "sso: the provider refused the code");
            return Err(SsoFailure::Refused);
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: String,
        }
        let tokens: TokenResponse = resp.json().await.map_err(|e| {
            tracing::warn!(error = %e, "sso: no ID token in the provider's answer");
            SsoFailure::Provider
        })?;
        let (username, link) = self.check_id_token(&tokens.id_token, &flow.nonce).await?;
        Ok(SignedIn {
            username,
            id_token: tokens.id_token,
            link,
        })
    }

    /// Where to send the browser to sign out at the provider after signing
    /// out of Vigil (OpenID Connect RP-Initiated Logout 1.0 §2), coming
    /// back to the dashboard's sign-in page; `None` when not configured,
    /// or the provider has no such endpoint or cannot be reached (Vigil's
    /// own sign-out has happened all the same). `id_token_hint`: the ID
    /// token of the sign-in, so the provider need not ask whom to sign out.
    pub async fn sign_out_url(&self, id_token_hint: Option<&str>) -> Option<String> {
        if !self.settings.sign_out_provider {
            return None;
        }
        // What was read at the sign-in, however old: the endpoint hardly
        // ever changes, and reading it again from a provider that is down
        // would hold the sign-out for the request's timeout.
        let held = self
            .provider
            .lock()
            .await
            .as_ref()
            .map(|p| p.discovery.clone());
        let d = match held {
            Some(d) => d,
            None => match self.discovery().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "sso: provider unavailable for sign-out");
                    return None;
                }
            },
        };
        let mut url = reqwest::Url::parse(d.end_session_endpoint.as_deref()?).ok()?;
        let back = format!(
            "{}/",
            self.settings
                .redirect_url
                .strip_suffix(CALLBACK_PATH)
                .unwrap_or(&self.settings.redirect_url)
        );
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("post_logout_redirect_uri", &back);
        if let Some(hint) = id_token_hint {
            url.query_pairs_mut().append_pair("id_token_hint", hint);
        }
        Some(url.to_string())
    }

    /// A JWT the provider signed for this client: the checks an ID token
    /// and a logout token share (signature by a published key with an
    /// allowed algorithm, issuer, audience and `azp`, expiry when present,
    /// the `required` claims); its claims, or why not.
    async fn verified(&self, token: &str, required: &[&str]) -> Result<Claims, Unverified> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Unverified::Refused("not a JWT".into()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Unverified::Refused(
                "signature algorithm not allowed".into(),
            ));
        }
        let key = self
            .key(header.kid.as_deref())
            .await
            .map_err(Unverified::Provider)?
            .ok_or_else(|| {
                Unverified::Refused("signed with a key the provider does not publish".into())
            })?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.client_id]);
        v.set_required_spec_claims(required);
        v.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &v)
            .map_err(|e| Unverified::Refused(e.to_string()))?
            .claims;
        // With more than one audience, the token must be for this client.
        if let Some(serde_json::Value::Array(auds)) = claims.get("aud")
            && auds.len() > 1
            && claims.get("azp").and_then(|a| a.as_str()) != Some(&self.settings.client_id)
        {
            return Err(Unverified::Refused("azp is not this client".into()));
        }
        Ok(claims)
    }

    /// The ID token's checks (OpenID Connect Core §3.1.3.7); the username,
    /// and the provider's sign-in the session comes from.
    async fn check_id_token(
        &self,
        token: &str,
        nonce: &str,
    ) -> Result<(String, SsoLink), SsoFailure> {
        let refused = |why: &str| {
            tracing::warn!(why, "sso: ID token refused");
            SsoFailure::Refused
        };
        let claims = self
            .verified(token, &["exp", "iss", "aud", "sub"])
            .await
            .map_err(|u| match u {
                Unverified::Provider(e) => {
                    tracing::warn!(error = %e, "sso: provider keys unavailable");
                    SsoFailure::Provider
                }
                Unverified::Refused(why) => refused(&why),
            })?;
        let sent = claims.get("nonce").and_then(|n| n.as_str()).unwrap_or("");
        if !vigil_store::secrets::ct_eq(sent, nonce) {
            return Err(refused("nonce is not this sign-in's"));
        }
        let text = |c: &str| {
            claims
                .get(c)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let link = SsoLink {
            sub: text("sub")
                .ok_or_else(|| refused("no subject"))?
                .to_string(),
            sid: text("sid").map(str::to_string),
        };
        match text(&self.settings.username_claim) {
            Some(u) => Ok((u.to_string(), link)),
            None => Err(refused("no username claim")),
        }
    }

    /// A logout token's checks (OpenID Connect Back-Channel Logout 1.0
    /// §2.6): a token [`Sso::verified`] with `iat`, the back-channel
    /// logout event, a `sub` or a `sid`, and no `nonce` (so an ID token
    /// cannot be passed off as one), and a `jti` by which it is taken once
    /// (remembered by the store until it would expire:
    /// [`vigil_store::Store::sso_logout`]).
    pub async fn check_logout_token(&self, token: &str) -> Result<LogoutToken, Unverified> {
        let claims = self.verified(token, &["iss", "aud", "iat"]).await?;
        let refused = |why: &str| Err(Unverified::Refused(why.into()));
        if claims.contains_key("nonce") {
            return refused("a logout token has no nonce");
        }
        // `iat` is required; without an `exp`, a token issued more than
        // LOGOUT_TOKEN_AGE ago is too old to act on.
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(60);
        match claims.get("iat").and_then(|v| v.as_i64()) {
            None => return refused("no iat"),
            Some(iat) if iat > now + leeway => return refused("issued in the future"),
            Some(iat) if !claims.contains_key("exp") && iat < now - LOGOUT_TOKEN_AGE - leeway => {
                return refused("issued too long ago, with no exp");
            }
            Some(_) => {}
        }
        let event = claims
            .get("events")
            .and_then(|e| e.as_object())
            .and_then(|e| e.get(LOGOUT_EVENT));
        if !event.is_some_and(|e| e.is_object()) {
            return refused("not a back-channel logout event");
        }
        let text = |c: &str| {
            claims
                .get(c)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (sub, sid) = match (text("sub"), text("sid")) {
            (None, None) => return refused("names no subject and no session"),
            named => named,
        };
        let Some(jti) = text("jti") else {
            return refused("no jti");
        };
        if jti.len() > MAX_JTI_BYTES {
            return refused("a jti longer than 256 bytes");
        }
        // Remembered until it would have expired (with no `exp`, as long as
        // a token without one is taken), so it cannot be taken twice.
        let until = claims
            .get("exp")
            .and_then(|v| v.as_i64())
            .unwrap_or_else(|| iat_or_now(&claims, now).saturating_add(LOGOUT_TOKEN_AGE))
            .saturating_add(leeway);
        let expires_at = chrono::DateTime::from_timestamp(until, 0)
            .ok_or_else(|| Unverified::Refused("an exp out of range".into()))?;
        Ok(LogoutToken {
            jti,
            expires_at,
            sub,
            sid,
        })
    }
}

/// A JWT's claims.
type Claims = serde_json::Map<String, serde_json::Value>;

/// A logout token that passed every check: what it names, and its id.
#[derive(Debug)]
pub struct LogoutToken {
    pub jti: String,
    /// When it would expire: it is remembered until then.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub sub: Option<String>,
    pub sid: Option<String>,
}

/// A token's `iat`, or `now` without one.
fn iat_or_now(claims: &Claims, now: i64) -> i64 {
    claims.get("iat").and_then(|v| v.as_i64()).unwrap_or(now)
}

/// How many logout tokens, not yet expired, are remembered at most (beyond
/// it, new ones are refused until some expire: a flood cannot grow the
/// store's table without bound).
const LOGOUTS_REMEMBERED: i64 = 100_000;

/// The longest `jti` taken (they are identifiers, not documents).
const MAX_JTI_BYTES: usize = 256;

/// How old, in seconds, a logout token with no `exp` may be.
const LOGOUT_TOKEN_AGE: i64 = 600;

/// The event a logout token carries (Back-Channel Logout 1.0 §2.4).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a token from the provider was not taken.
#[derive(Debug)]
pub enum Unverified {
    /// Its keys could not be read.
    Provider(ProviderError),
    /// It failed a check: which.
    Refused(String),
}

/// A sign-in the provider vouched for.
pub struct SignedIn {
    /// The username claim: which Vigil account.
    pub username: String,
    /// The ID token as sent, for the provider's sign-out.
    pub id_token: String,
    /// The provider's sign-in, for its back-channel logout.
    pub link: SsoLink,
}

/// One sign-in's secrets, kept in the browser between the two legs, and
/// the dashboard's place to return to.
pub struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    /// A place in the dashboard (`#/patients/12`), checked by
    /// [`dashboard_place`]; empty for the ward.
    place: String,
}

/// `s` if it is a place in the dashboard to return to after signing in:
/// a fragment route (`#/…`) of URL-safe characters, so that the redirect
/// built from it (`/` and it) stays on this site and in one header line.
pub fn dashboard_place(s: &str) -> Option<&str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/-_.?=&%".contains(c);
    (s.starts_with("#/") && s.len() <= 200 && s[1..].chars().all(safe)).then_some(s)
}

fn random_b64(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

impl Flow {
    fn new(place: &str) -> Flow {
        Flow {
            state: random_b64(24),
            nonce: random_b64(24),
            verifier: random_b64(32),
            place: dashboard_place(place).unwrap_or_default().to_string(),
        }
    }

    /// Where the dashboard opens after this sign-in: `/` and its place.
    fn landing(&self) -> String {
        format!("/{}", self.place)
    }

    /// RFC 7636 `S256`: the challenge the provider checks the verifier by.
    fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    fn to_cookie(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.state,
            self.nonce,
            self.verifier,
            URL_SAFE_NO_PAD.encode(&self.place)
        )
    }

    fn from_cookie(v: &str) -> Option<Flow> {
        let mut parts = v.split('.');
        let (state, nonce, verifier, place) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || [state, nonce, verifier].iter().any(|p| p.is_empty()) {
            return None;
        }
        let place = String::from_utf8(URL_SAFE_NO_PAD.decode(place).ok()?).ok()?;
        Some(Flow {
            state: state.into(),
            nonce: nonce.into(),
            verifier: verifier.into(),
            place: dashboard_place(&place).unwrap_or_default().to_string(),
        })
    }
}

/// `GET /api/v1/auth/methods`.
#[derive(Serialize, ToSchema)]
pub struct SignInMethods {
    /// Whether `POST /api/v1/login` takes passwords.
    password: bool,
    /// Single sign-on, when configured.
    sso: Option<SsoMethod>,
}

#[derive(Serialize, ToSchema)]
pub struct SsoMethod {
    /// The provider's name for the button: "Sign in with {label}".
    label: String,
    /// Where the browser goes to sign in.
    login_url: String,
}

/// `GET /api/v1/auth/methods`: how this Vigil signs people in, for the
/// dashboard's sign-in page.
#[utoipa::path(
    get, path = "/api/v1/auth/methods", tag = "auth",
    security(()),
    responses((status = 200, description = "The sign-in methods on offer", body = SignInMethods))
)]
pub async fn methods(State(state): State<AppState>) -> axum::Json<SignInMethods> {
    axum::Json(SignInMethods {
        password: state.password_login,
        sso: state.sso.as_ref().map(|s| SsoMethod {
            label: s.settings.label.clone(),
            login_url: "/api/v1/auth/sso/login".into(),
        }),
    })
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(SET_COOKIE, v);
        }
    }
    resp
}

fn flow_cookie(value: &str, max_age: u64, tls: bool) -> String {
    // SameSite=Lax, not Strict: the provider's redirect back is a
    // navigation from another site, on which a Strict cookie is not sent.
    format!(
        "{FLOW_COOKIE}={value}; Path=/api/v1/auth/sso; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if tls { "; Secure" } else { "" }
    )
}

/// The cookie that marks a session as single sign-on's, for
/// `POST /api/v1/logout` alone: its value is the ID token (the provider's
/// sign-out hint), or `-` when the token would make the cookie larger than
/// browsers keep. As long-lived as the session at most.
pub const SIGN_OUT_COOKIE: &str = "vigil_sso_out";

fn sign_out_cookie(id_token: &str, tls: bool) -> String {
    let value = match id_token.len() <= 3500 {
        true => id_token,
        false => "-",
    };
    format!(
        "{SIGN_OUT_COOKIE}={value}; Path=/api/v1/logout; HttpOnly; SameSite=Strict; Max-Age={}{}",
        crate::auth::SESSION_TTL_HOURS * 3600,
        if tls { "; Secure" } else { "" }
    )
}

/// The sign-out cookie cleared.
pub fn sign_out_cookie_cleared(tls: bool) -> String {
    format!(
        "{SIGN_OUT_COOKIE}=; Path=/api/v1/logout; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if tls { "; Secure" } else { "" }
    )
}

/// Back to the dashboard saying why, at `place` if known (so a password
/// sign-in from there still opens it).
fn failed(state: &AppState, f: SsoFailure, place: &str) -> Response {
    state.metrics.sso.with_label_values(&[f.code()]).inc();
    let tls = state.tls;
    redirect(
        &format!(
            "/?sso_error={}{}",
            f.code(),
            dashboard_place(place).unwrap_or_default()
        ),
        &[flow_cookie("", 0, tls)],
    )
}

/// The relying party, or 404 for both routes when `[sso]` is not set.
fn configured(state: &AppState) -> Result<std::sync::Arc<Sso>, crate::error::ApiError> {
    state
        .sso
        .clone()
        .ok_or(crate::error::ApiError::NotFound("route"))
}

/// `GET /api/v1/auth/sso/login`: off to the provider.
#[utoipa::path(
    get, path = "/api/v1/auth/sso/login", tag = "auth",
    security(()),
    params(("return" = Option<String>, Query, description = "A place in the dashboard to open after signing in, `#/…` (as `#/patients/12`)")),
    responses(
        (status = 303, description = "To the provider's sign-in page (or back to the dashboard with `sso_error=provider` if it cannot be reached)",
         headers(("set-cookie" = String, description = "vigil_sso=…; Path=/api/v1/auth/sso; HttpOnly; SameSite=Lax; Max-Age=600"))),
        (status = 404, description = "Single sign-on is not configured", body = crate::openapi::ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, crate::error::ApiError> {
    let sso = configured(&state)?;
    // A place that is not one is dropped: the sign-in goes to the ward.
    let place = query.ok().and_then(|q| q.0.r#return).unwrap_or_default();
    match sso.start(&place).await {
        Ok((url, flow)) => Ok(redirect(
            &url,
            &[flow_cookie(&flow, FLOW_MAX_AGE_SECS, state.tls)],
        )),
        Err(e) => {
            tracing::warn!(error = %e, "sso: provider unavailable");
            Ok(failed(&state, SsoFailure::Provider, &place))
        }
    }
}

/// `GET /api/v1/auth/sso/login`'s query.
#[derive(Deserialize)]
pub struct LoginQuery {
    r#return: Option<String>,
}

/// What the provider sends the browser back with.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /api/v1/auth/sso/callback`: back from the provider; a session.
#[utoipa::path(
    get, path = "/api/v1/auth/sso/callback", tag = "auth",
    security(()),
    params(
        ("code" = Option<String>, Query, description = "The provider's authorization code"),
        ("state" = Option<String>, Query, description = "This sign-in's state"),
        ("error" = Option<String>, Query, description = "The provider's error (the user cancelled, say)"),
    ),
    responses(
        (status = 303, description = "To the dashboard: signed in (a session cookie as from POST /api/v1/login), or with `sso_error` = cancelled, expired, provider, refused or no-account",
         headers(("set-cookie" = String, description = "vigil_session=…; and vigil_sso cleared"))),
        (status = 404, description = "Single sign-on is not configured", body = crate::openapi::ErrorBody),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, crate::error::ApiError> {
    let sso = configured(&state)?;
    let tls = state.tls;
    let flow = crate::auth::cookie(&headers, FLOW_COOKIE).and_then(|v| Flow::from_cookie(&v));
    let place = flow.as_ref().map(|f| f.place.clone()).unwrap_or_default();
    let Ok(Query(q)) = query else {
        return Ok(failed(&state, SsoFailure::Expired, &place));
    };
    if q.error.is_some() {
        return Ok(failed(&state, SsoFailure::Cancelled, &place));
    }
    let (Some(flow), Some(code), Some(sent_state)) = (flow, q.code, q.state) else {
        return Ok(failed(&state, SsoFailure::Expired, &place));
    };
    if !vigil_store::secrets::ct_eq(&sent_state, &flow.state) {
        return Ok(failed(&state, SsoFailure::Expired, ""));
    }
    let addr = Some(peer);
    let SignedIn {
        username,
        id_token,
        link,
    } = match sso.finish(&code, &flow).await {
        Ok(u) => u,
        Err(f) => {
            if f == SsoFailure::Refused {
                crate::audit::record_raw(
                    &state,
                    None,
                    "",
                    "login.failed",
                    None,
                    serde_json::json!({"via": "sso", "why": "token refused"}),
                    addr,
                )
                .await?;
            }
            return Ok(failed(&state, f, &flow.place));
        }
    };
    let audited_name: String = username.chars().take(64).collect();
    let user = if crate::text::check("username", &username, false).is_ok() {
        account_of(&state, &username).await?
    } else {
        None
    };
    let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
        tracing::info!("sso: no enabled account for the provider's username");
        crate::audit::record_raw(
            &state,
            None,
            &audited_name,
            "login.failed",
            None,
            serde_json::json!({"via": "sso", "why": "no enabled account"}),
            addr,
        )
        .await?;
        return Ok(failed(&state, SsoFailure::NoAccount, &flow.place));
    };
    let (_, session) = crate::auth::start_session(&state, &user, addr, Some(link)).await?;
    state.metrics.sso.with_label_values(&["signed_in"]).inc();
    let mut cookies = vec![session, flow_cookie("", 0, tls)];
    if sso.settings.sign_out_provider {
        cookies.push(sign_out_cookie(&id_token, tls));
    }
    Ok(redirect(&flow.landing(), &cookies))
}

/// What the provider posts to end sessions (Back-Channel Logout 1.0 §2.5).
#[derive(Deserialize, ToSchema)]
pub struct BackChannel {
    /// A JWT the provider signed, naming the sign-in that ended.
    logout_token: Option<String>,
}

/// `POST /api/v1/auth/sso/backchannel-logout`: the provider says a sign-in
/// has ended (a smartcard taken out, a sign-out in another application),
/// and the dashboard sessions begun through it end now, not after their
/// 30 minutes idle. Register this address with the provider as the
/// client's back-channel logout URI.
#[utoipa::path(
    post, path = "/api/v1/auth/sso/backchannel-logout", tag = "auth",
    security(()),
    request_body(content = BackChannel, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token was the provider's, and every live session of the sign-in it names has ended (none, if there were none)"),
        (status = 400, description = "No logout token, or one that failed a check, or the provider's keys could not be read: `{\"error\": \"invalid_request\", \"error_description\"}`"),
        (status = 404, description = "Single sign-on is not configured", body = crate::openapi::ErrorBody),
    )
)]
pub async fn backchannel_logout(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    form: Result<axum::Form<BackChannel>, axum::extract::rejection::FormRejection>,
) -> Result<Response, crate::error::ApiError> {
    let sso = configured(&state)?;
    let addr = Some(peer);
    let answer = |status: StatusCode, body: serde_json::Value| {
        let mut r = (status, axum::Json(body)).into_response();
        r.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        r
    };
    let token = form.ok().and_then(|axum::Form(f)| f.logout_token);
    let checked = match token {
        None => Err(Unverified::Refused("no logout_token".into())),
        Some(t) => sso.check_logout_token(&t).await,
    };
    let checked = match checked {
        Ok(t) => {
            let taken = state
                .store
                .sso_logout(
                    &vigil_store::SsoLogout {
                        jti: &t.jti,
                        expires_at: t.expires_at,
                        sub: t.sub.as_deref(),
                        sid: t.sid.as_deref(),
                        remembered_at_most: LOGOUTS_REMEMBERED,
                    },
                    chrono::Utc::now(),
                )
                .await?;
            match taken {
                vigil_store::SsoLogoutOutcome::Ended(ended) => Ok(ended),
                vigil_store::SsoLogoutOutcome::TakenAlready => Err(Unverified::Refused(
                    "this logout token was taken already".into(),
                )),
                vigil_store::SsoLogoutOutcome::TooMany => {
                    Err(Unverified::Refused("too many logout tokens at once".into()))
                }
            }
        }
        Err(u) => Err(u),
    };
    let ended = match checked {
        Ok(ended) => ended,
        Err(u) => {
            let why = match u {
                Unverified::Provider(e) => {
                    tracing::warn!(error = %e, "sso: provider keys unavailable for a logout token");
                    "the provider's keys could not be read".to_string()
                }
                Unverified::Refused(why) => {
                    tracing::warn!(why, "sso: logout token refused");
                    why
                }
            };
            state
                .metrics
                .sso_logouts
                .with_label_values(&["refused"])
                .inc();
            crate::audit::record_raw(
                &state,
                None,
                "",
                "logout.provider.refused",
                None,
                serde_json::json!({"why": why}),
                addr,
            )
            .await?;
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_request", "error_description": why}),
            ));
        }
    };
    state
        .metrics
        .sso_logouts
        .with_label_values(&["ended"])
        .inc();
    tracing::info!(sessions = ended.len(), "sso: the provider ended a sign-in");
    let mut per_account: std::collections::BTreeMap<i64, usize> = Default::default();
    for user in &ended {
        *per_account.entry(*user).or_default() += 1;
    }
    let names: std::collections::HashMap<i64, String> = if per_account.is_empty() {
        Default::default()
    } else {
        state
            .store
            .users_list()
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect()
    };
    for (user, sessions) in &per_account {
        crate::audit::record_raw(
            &state,
            Some(*user),
            names.get(user).map_or("", String::as_str),
            "logout.provider",
            None,
            serde_json::json!({"sessions": sessions}),
            addr,
        )
        .await?;
    }
    Ok(answer(StatusCode::OK, serde_json::json!({})))
}

/// The Vigil account the provider's `username` names: the one of that
/// username, or else the one equal to it but for case (providers give
/// UPNs and email addresses in whatever case the directory holds them).
/// Two accounts differing only in case name nobody: neither is taken.
async fn account_of(
    state: &AppState,
    username: &str,
) -> Result<Option<vigil_store::UserRecord>, crate::error::ApiError> {
    if let Some(u) = state.store.user_by_username(username).await? {
        return Ok(Some(u));
    }
    match state.store.usernames_folded(username).await?.as_slice() {
        [one] => Ok(state.store.user_by_username(one).await?),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP client as the daemon gives the relying party (rustls with a
    /// provider; the tests' providers are plain http).
    fn client() -> reqwest::Client {
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .expect("client")
    }

    /// A provider serving only its keys, which the test changes, counting
    /// the reads.
    async fn keys_server(
        kids: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // RSA keys whose numbers are never used: only found.
                let keys: Vec<serde_json::Value> = kids
                    .lock()
                    .expect("kids")
                    .iter()
                    .map(|k| serde_json::json!({"kty": "RSA", "kid": k, "n": "AQAB", "e": "AQAB"}))
                    .collect();
                async move { axum::Json(serde_json::json!({ "keys": keys })) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// A key rotated in at the provider is found by reading the keys again;
    /// an id it does not publish is not, and asking again within the limit
    /// does not read them again.
    #[tokio::test]
    async fn a_rotated_key_is_read_again_and_unknown_ids_at_most_once_a_while() {
        use std::sync::atomic::Ordering;
        let kids = std::sync::Arc::new(std::sync::Mutex::new(vec!["old"]));
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jwks_uri = keys_server(kids.clone(), reads.clone()).await;
        let http = client();
        let mut sso = Sso::new(
            SsoSettings {
                issuer: "http://127.0.0.1".into(),
                client_id: "c".into(),
                client_secret: "s".into(),
                redirect_url: "http://127.0.0.1/api/v1/auth/sso/callback".into(),
                username_claim: "preferred_username".into(),
                scopes: "openid".into(),
                label: "t".into(),
                prompt: None,
                sign_out_provider: false,
            },
            http,
        );
        let now = Instant::now();
        *sso.provider.lock().await = Some(Provider {
            discovery: Discovery {
                issuer: "http://127.0.0.1".into(),
                authorization_endpoint: String::new(),
                token_endpoint: String::new(),
                jwks_uri,
                end_session_endpoint: None,
            },
            jwks: JwkSet {
                keys: serde_json::from_value(
                    serde_json::json!([{"kty": "RSA", "kid": "old", "n": "AQAB", "e": "AQAB"}]),
                )
                .expect("jwk"),
            },
            fetched: now,
            jwks_fetched: now - Duration::from_secs(3600),
        });
        sso.keys_refresh_min = Duration::from_secs(30);
        assert!(sso.key(Some("old")).await.expect("key").is_some());
        assert_eq!(reads.load(Ordering::SeqCst), 0, "a known key: no read");
        kids.lock().expect("kids").push("new");
        assert!(sso.key(Some("new")).await.expect("key").is_some());
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "read again for the new one"
        );
        assert!(sso.key(Some("forged")).await.expect("key").is_none());
        assert!(sso.key(Some("forged")).await.expect("key").is_none());
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "not again within the limit"
        );
    }

    /// The provider's sign-out address is built from what the sign-in read,
    /// however old, without asking a provider that may be down (this one
    /// is on a closed port: a read would fail and give no address).
    #[tokio::test]
    async fn sign_out_uses_what_the_sign_in_read() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", l.local_addr().expect("addr"))
        };
        let settings = SsoSettings {
            issuer: closed.clone(),
            client_id: "vigil".into(),
            client_secret: "s".into(),
            redirect_url: "https://vigil.example/api/v1/auth/sso/callback".into(),
            username_claim: "preferred_username".into(),
            scopes: "openid".into(),
            label: "t".into(),
            prompt: None,
            sign_out_provider: true,
        };
        let sso = Sso::new(settings.clone(), client());
        assert_eq!(
            sso.sign_out_url(Some("tok")).await,
            None,
            "nothing read, provider down"
        );
        *sso.provider.lock().await = Some(Provider {
            discovery: Discovery {
                issuer: closed.clone(),
                authorization_endpoint: String::new(),
                token_endpoint: String::new(),
                jwks_uri: String::new(),
                end_session_endpoint: Some(format!("{closed}/logout")),
            },
            jwks: JwkSet { keys: Vec::new() },
            fetched: Instant::now() - 2 * PROVIDER_TTL,
            jwks_fetched: Instant::now(),
        });
        assert_eq!(
            sso.sign_out_url(Some("tok")).await.as_deref(),
            Some(
                format!("{closed}/logout?client_id=vigil&post_logout_redirect_uri=https%3A%2F%2Fvigil.example%2F&id_token_hint=tok")
                    .as_str()
            )
        );
        let off = Sso::new(
            SsoSettings {
                sign_out_provider: false,
                ..settings
            },
            client(),
        );
        assert_eq!(off.sign_out_url(Some("tok")).await, None);
    }

    #[test]
    fn the_flow_survives_its_cookie_and_nothing_else_does() {
        let f = Flow::new("#/patients/12");
        let back = Flow::from_cookie(&f.to_cookie()).expect("round trip");
        assert_eq!(
            (back.landing(), back.state, back.nonce, back.verifier),
            (
                "/#/patients/12".to_string(),
                f.state.clone(),
                f.nonce.clone(),
                f.verifier.clone(),
            )
        );
        assert_eq!(Flow::new("").landing(), "/");
        for bad in [
            "",
            "a.b",
            "a..c.",
            "a.b.c",
            "a.b.c.d.e",
            ".b.c.",
            "a.b.c.%%",
        ] {
            assert!(Flow::from_cookie(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_dashboard_route_is_a_place_to_return_to() {
        for ok in ["#/patients/12", "#/", "#/patients/3?tab=ecg"] {
            assert_eq!(dashboard_place(ok), Some(ok));
        }
        for bad in [
            "",
            "/#/patients/1",
            "#patients",
            "https://evil.example/",
            "#/a\r\nSet-Cookie: x=y",
            "#/<script>",
            "//evil.example",
            &format!("#/{}", "a".repeat(300)),
        ] {
            assert_eq!(dashboard_place(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        let f = Flow {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            place: String::new(),
        };
        assert_eq!(f.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
