//! Staff accounts from the dashboard, for admins: list, add, change role or
//! wards, disable and enable, set a password. Until these, every account
//! change was `vigil admin user …` on the server, so a ward manager who
//! needed a bank nurse on tonight's shift needed someone with a shell.
//!
//! Admins are admins of their wards, not of the trust: an admin sees the
//! accounts that share a ward with them, and changes only those whose every
//! ward is one of theirs, never their own (an admin cannot lock themselves
//! out, or hand themselves a ward). Wards given are only the admin's own.
//! The rules the CLI shares (a password's length, a username taken in any
//! letter case) are in [`crate::admin`], so the two cannot differ.
//!
//! Every change is on the audit trail under the same actions as the CLI's
//! (`user.add`, `user.role`, …), with the admin's name instead of
//! `vigil-admin`.

use axum::extract::State;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_store::{Role, UserRecord, Ward};

use crate::AppState;
use crate::admin;
use crate::auth::Caller;
use crate::error::{ApiError, Id, bad_json};
use crate::openapi::ErrorBody;
use crate::patients::admin_error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{id}", patch(update))
        .route("/api/v1/users/{id}/password", post(set_password))
}

/// A staff account as an admin sees it.
#[derive(Serialize, ToSchema)]
pub struct StaffAccount {
    id: i64,
    username: String,
    role: Role,
    /// The account's wards, by name
    wards: Vec<Ward>,
    /// When it was disabled (a leaver); null while it can sign in
    disabled_at: Option<DateTime<Utc>>,
    /// Whether you may change it: not your own, and every ward of it yours
    manageable: bool,
    /// Why not, in words, when `manageable` is false
    #[serde(skip_serializing_if = "Option::is_none")]
    why_not: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StaffList {
    /// By username
    users: Vec<StaffAccount>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    /// 1 to 64 characters; not one taken in any letter case
    #[schema(example = "jane.doe@nhs.net")]
    username: String,
    /// `nurse`, `consultant` or `admin`
    #[schema(example = "nurse")]
    role: String,
    /// Ward ids, at least one, each one of yours
    wards: Vec<i64>,
    /// At least 8 characters; give this or `sso_only`
    #[serde(default)]
    password: Option<String>,
    /// The account signs in only through single sign-on (its password is
    /// random and told to nobody); needs `[sso]`
    #[serde(default)]
    sso_only: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    id: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffChange {
    /// `nurse`, `consultant` or `admin`; the account's sessions end
    #[serde(default)]
    role: Option<String>,
    /// Exactly these wards (ids, at least one, each one of yours)
    #[serde(default)]
    wards: Option<Vec<i64>>,
    /// `true`: a leaver; its sessions and API tokens end. `false`: it can
    /// sign in again (its old credentials stay ended)
    #[serde(default)]
    disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// At least 8 characters
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordSet {
    /// The account's sessions that ended
    sessions_revoked: u64,
}

/// Can `caller` change `user`? `None` if so, else why not.
fn why_not(caller: &Caller, user: &UserRecord) -> Option<String> {
    if user.id == caller.0.id {
        return Some(
            "Your own account: another admin, or vigil admin on the server, changes it.".into(),
        );
    }
    if user.ward_ids.iter().any(|w| !caller.sees_ward(*w)) {
        return Some(
            "Also on wards that are not yours: an admin of all its wards, or vigil admin on the server, changes it."
                .into(),
        );
    }
    None
}

/// Is the account one the caller may see: sharing a ward with them? (One
/// with no ward is nobody's to see here: `vigil admin` on the server.)
fn visible(caller: &Caller, user: &UserRecord) -> bool {
    user.ward_ids.iter().any(|w| caller.sees_ward(*w))
}

/// The account as an admin sees it, its wards named from `names`.
fn account(
    caller: &Caller,
    names: &std::collections::HashMap<i64, Ward>,
    user: UserRecord,
) -> StaffAccount {
    let why_not = why_not(caller, &user);
    StaffAccount {
        wards: user
            .ward_ids
            .iter()
            .filter_map(|w| names.get(w).cloned())
            .collect(),
        id: user.id,
        username: user.username,
        role: user.role,
        disabled_at: user.disabled_at,
        manageable: why_not.is_none(),
        why_not,
    }
}

/// The wards `users` name, each read once however many accounts name it.
async fn ward_names(
    state: &AppState,
    users: &[UserRecord],
) -> Result<std::collections::HashMap<i64, Ward>, ApiError> {
    let mut ids: Vec<i64> = users
        .iter()
        .flat_map(|u| u.ward_ids.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let wards = admin::wards_of(state.store.as_ref(), &ids).await?;
    Ok(wards.into_iter().map(|w| (w.id, w)).collect())
}

/// The account `id`, if the caller may change it: 404 if they cannot see
/// it (ids cannot be probed), 403 naming why if they may only look.
async fn manageable(state: &AppState, caller: &Caller, id: i64) -> Result<UserRecord, ApiError> {
    caller.require(Role::Admin)?;
    let user = state
        .store
        .users_list()
        .await?
        .into_iter()
        .find(|u| u.id == id && visible(caller, u))
        .ok_or(ApiError::NotFound("user"))?;
    match why_not(caller, &user) {
        None => Ok(user),
        Some(why) => Err(ApiError::ForbiddenBecause(why)),
    }
}

/// The wards of a request, each one of the caller's; at least one.
fn own_wards(caller: &Caller, wards: &[i64]) -> Result<Vec<String>, ApiError> {
    if wards.is_empty() {
        return Err(ApiError::Invalid("wards: give at least one".into()));
    }
    match wards.iter().find(|w| !caller.sees_ward(**w)) {
        Some(w) => Err(ApiError::Invalid(format!("wards: no ward {w} among yours"))),
        None => Ok(wards.iter().map(i64::to_string).collect()),
    }
}

fn role_of(role: &str) -> Result<(), ApiError> {
    Role::parse(role)
        .map(|_| ())
        .ok_or_else(|| ApiError::Invalid("role: expected nurse, consultant or admin".into()))
}

/// `GET /api/v1/users` (admin): the accounts sharing a ward with you.
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The accounts that share a ward with you, by username", body = StaffList),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StaffList>, ApiError> {
    caller.require(Role::Admin)?;
    let visible_users: Vec<UserRecord> = state
        .store
        .users_list()
        .await?
        .into_iter()
        .filter(|u| visible(&caller, u))
        .collect();
    let names = ward_names(&state, &visible_users).await?;
    let users = visible_users
        .into_iter()
        .map(|u| account(&caller, &names, u))
        .collect();
    Ok(Json(StaffList { users }))
}

/// `POST /api/v1/users` (admin): add a member of staff to your wards.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    request_body = NewStaff,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Added", body = Created),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, or a cookie session without the CSRF header", body = ErrorBody),
        (status = 409, description = "The username is taken (in any letter case)", body = ErrorBody),
        (status = 422, description = "Bad body: the message names the field", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<NewStaff>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Created>), ApiError> {
    caller.require(Role::Admin)?;
    let Json(req) = body.map_err(bad_json)?;
    role_of(&req.role)?;
    let wards = own_wards(&caller, &req.wards)?;
    let password = match (req.password, req.sso_only) {
        (Some(_), true) => {
            return Err(ApiError::Invalid(
                "password: give a password or sso_only, not both".into(),
            ));
        }
        (None, false) => {
            return Err(ApiError::Invalid(
                "password: give a password, or sso_only for an account that signs in only through single sign-on".into(),
            ));
        }
        (Some(_), false) if !state.password_login => {
            return Err(ApiError::Invalid(
                "password: password sign-in is off here; give sso_only".into(),
            ));
        }
        (None, true) if state.sso.is_none() => {
            return Err(ApiError::Invalid(
                "sso_only: single sign-on is not configured here ([sso])".into(),
            ));
        }
        (Some(p), false) => p,
        // A password nobody is told, as `vigil admin user add --sso-only`.
        (None, true) => vigil_store::secrets::random_secret(),
    };
    let id = admin::add_user(
        state.store.as_ref(),
        &req.username,
        &req.role,
        &wards,
        &password,
    )
    .await
    .map_err(admin_error)?;
    tracing::info!(user_id = id, by = caller.0.id, "user added");
    crate::audit::record(
        &state,
        &caller,
        "user.add",
        None,
        serde_json::json!({"username": req.username, "role": req.role, "wards": req.wards, "sso_only": req.sso_only}),
    )
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(Created { id })))
}

/// `PATCH /api/v1/users/{id}` (admin): another role, other wards, disable
/// or enable.
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = StaffChange,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The account as now held", body = StaffAccount),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, a cookie session without the CSRF header, your own account, or one with wards not yours (the message says which)", body = ErrorBody),
        (status = 404, description = "No such account sharing a ward with you", body = ErrorBody),
        (status = 422, description = "Bad body: the message names the field", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<StaffChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<StaffAccount>, ApiError> {
    let user = manageable(&state, &caller, id).await?;
    let Json(req) = body.map_err(bad_json)?;
    // Everything is checked before anything is changed.
    if req.role.is_none() && req.wards.is_none() && req.disabled.is_none() {
        return Err(ApiError::Invalid(
            "body: give role, wards or disabled".into(),
        ));
    }
    if let Some(role) = &req.role {
        role_of(role)?;
    }
    let wards = req
        .wards
        .as_deref()
        .map(|w| own_wards(&caller, w))
        .transpose()?;
    let store = state.store.as_ref();
    let username = user.username.as_str();
    let now = Utc::now();
    if let Some(wards) = &wards {
        admin::set_wards(store, username, wards)
            .await
            .map_err(admin_error)?;
        audit(&state, &caller, "user.wards", username, "wards", &req.wards).await?;
    }
    if let Some(role) = &req.role {
        let ended = admin::set_role(store, username, role, now)
            .await
            .map_err(admin_error)?;
        let detail = serde_json::json!({"username": username, "role": role, "sessions_revoked": ended.revoked});
        crate::audit::record(&state, &caller, "user.role", None, detail).await?;
    }
    match req.disabled {
        Some(true) => {
            let ended = store.user_disable(username, now).await?;
            let detail = serde_json::json!({"username": username, "revoked": ended.revoked});
            crate::audit::record(&state, &caller, "user.disable", None, detail).await?;
        }
        Some(false) => {
            store.user_enable(username).await?;
            audit(&state, &caller, "user.enable", username, "enabled", &true).await?;
        }
        None => {}
    }
    tracing::info!(user_id = id, by = caller.0.id, "user changed");
    let user = store
        .user_by_username(username)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let names = ward_names(&state, std::slice::from_ref(&user)).await?;
    Ok(Json(account(&caller, &names, user)))
}

async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    username: &str,
    key: &str,
    value: &impl Serialize,
) -> Result<(), ApiError> {
    let detail = serde_json::json!({"username": username, key: value});
    crate::audit::record(state, caller, action, None, detail).await
}

/// `POST /api/v1/users/{id}/password` (admin): set a member of staff's
/// password (a forgotten one); their sessions end.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/password", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = NewPassword,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Set; the account's sessions ended", body = PasswordSet),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not an admin, no CSRF header, your own account (change it with /api/v1/me/password), one with wards not yours, or `password_off`", body = ErrorBody),
        (status = 404, description = "No such account sharing a ward with you", body = ErrorBody),
        (status = 422, description = "Too short", body = ErrorBody),
    )
)]
pub(crate) async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: Result<Json<NewPassword>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PasswordSet>, ApiError> {
    let user = manageable(&state, &caller, id).await?;
    if !state.password_login {
        return Err(ApiError::PasswordOff);
    }
    let Json(req) = body.map_err(bad_json)?;
    let ended = admin::set_password(
        state.store.as_ref(),
        &user.username,
        &req.password,
        Utc::now(),
    )
    .await
    .map_err(admin_error)?;
    tracing::info!(user_id = id, by = caller.0.id, "user password set");
    let detail = serde_json::json!({"username": user.username, "sessions_revoked": ended.revoked});
    crate::audit::record(&state, &caller, "user.password", None, detail).await?;
    Ok(Json(PasswordSet {
        sessions_revoked: ended.revoked,
    }))
}
