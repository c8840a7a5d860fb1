//! The OpenAPI 3.1 description of `/api/v1`, generated from the handlers'
//! `#[utoipa::path]` annotations and the response types' `ToSchema`
//! derives, and served at `GET /api/v1/openapi.json` (no authentication: it
//! holds no patient data). `tests/e2e/openapi.rs` fuzzes a live daemon
//! against it with schemathesis, so it cannot drift from what the code does.

use axum::Json;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The one error shape of every route.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized` (401), `forbidden`, `csrf` or `password_off` (403), `not_found` (404),
    /// `conflict` (409), `invalid` (422), `throttled` (429), `internal` (500).
    #[schema(example = "not_found")]
    pub code: ErrorCode,
    /// For people; a 422's message names the field.
    pub message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    Csrf,
    PasswordOff,
    NotFound,
    Conflict,
    Invalid,
    Throttled,
    Internal,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A token from `vigil admin token create`: `Authorization: Bearer <token>`.".into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The session cookie from POST /api/v1/login (HttpOnly, SameSite=Strict, 12 h absolute, 30 min idle). \
                 A cookie-authenticated request other than GET/HEAD must also send the `x-csrf-token` header \
                 (from the login response or GET /api/v1/me), else 403 `csrf`.",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vigil API",
        description = "Vigil's HTTP API under /api/v1: ward lists, observations, NEWS2, ECG, alerts, \
admission, device provisioning and the audit trail. Users see only the wards they belong to; a \
patient or alert outside them is a 404, so ids cannot be probed. Errors are \
`{\"error\": {\"code\", \"message\"}}`. See docs/http.md.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::auth::login,
        crate::auth::logout,
        crate::auth::me,
        crate::auth::change_password,
        crate::sso::methods,
        crate::sso::login,
        crate::sso::callback,
        crate::sso::backchannel_logout,
        crate::stream::upgrade,
        openapi_json,
        crate::patients::list,
        crate::patients::discharged,
        crate::patients::ward_notes,
        crate::patients::ward_plans,
        crate::patients::create,
        crate::patients::one,
        crate::patients::observations,
        crate::entered::enter,
        crate::patients::scores,
        crate::patients::ecg,
        crate::patients::update_episode,
        crate::summary::summary,
        crate::follow_ups::add,
        crate::follow_ups::list,
        crate::follow_ups::cancel,
        crate::follow_ups::upcoming,
        crate::patients::discharge,
        crate::patients::notes,
        crate::patients::add_note,
        crate::patients::pathways,
        crate::alerts::list,
        crate::alerts::resolved,
        crate::alerts::one,
        crate::alerts::acknowledge,
        crate::alerts::escalate,
        crate::alerts::resolve,
        crate::devices::create,
        crate::devices::assign,
        crate::devices::list,
        crate::devices::unassign,
        crate::devices::revoke,
        crate::audit::query,
        crate::users::list,
        crate::users::create,
        crate::users::update,
        crate::users::set_password,
        crate::report::report,
        crate::report::report_csv,
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Sign-in, sessions and the current user"),
        (name = "patients", description = "Ward lists, patients, observations, NEWS2, ECG, admission"),
        (name = "alerts", description = "The alert queue and its lifecycle"),
        (name = "devices", description = "Devices: provisioning, the inventory, assignment and revocation (admin)"),
        (name = "audit", description = "The audit trail (admin)"),
        (name = "users", description = "Staff accounts of your wards (admin)"),
        (name = "wards", description = "A ward's activity over a period"),
        (name = "meta", description = "This description and the live stream"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`: this API's description.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 description of /api/v1", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
