//! `vigil admin …`: one JSON object on stdout per command.

use std::io::BufRead;

use chrono::Utc;
use serde_json::{Value, json};
use vigil_store::secrets::hash_secret;
use vigil_store::{Store, TokenKind};
use vigil_web::admin::{self, AdminError, AdmitRequest};

use crate::Failure;
use crate::cli::{
    AdminCommand, DeviceCommand, MqttCommand, NotifyCommand, PatientCommand, TokenCommand,
    UserCommand, WardCommand,
};
use crate::config::Config;

/// Run one admin command against `store`; a command that changes
/// something is written to the audit trail (`vigil-admin`, with the
/// operating-system account that ran it), as the API's are.
pub async fn run(
    store: &dyn Store,
    pathways: &vigil_rules::Pathways,
    config: &Config,
    cmd: AdminCommand,
) -> Result<Value, Failure> {
    let now = Utc::now();
    let what = audited(&cmd);
    let out = execute(store, pathways, config, cmd, now).await?;
    if let Some((action, patient, detail)) = what {
        // The patient the command found, where the command did not name one.
        let patient = patient.or_else(|| match action {
            "patient.admit" => out["id"].as_i64(),
            "device.unassign" => out["patient_id"].as_i64(),
            _ => None,
        });
        let mut detail = detail;
        if let (Value::Object(d), Value::Object(o)) = (&mut detail, &out) {
            // What the command answered that the trail should keep (never
            // a password or a token).
            for k in [
                "device_id",
                "readmitted",
                "revoked",
                "sessions_revoked",
                "resolved_alerts",
                "devices",
            ] {
                if let Some(v) = o.get(k) {
                    d.insert(k.into(), v.clone());
                }
            }
            d.insert("os_user".into(), json!(os_user()));
        }
        store
            .audit_append(vigil_store::AuditEntry {
                at: now,
                user_id: None,
                username: "vigil-admin".into(),
                action: action.into(),
                patient_id: patient,
                detail,
                addr: None,
            })
            .await
            .map_err(|e| {
                Failure::Other(format!(
                    "{action} was done ({out}), but its audit entry could not be written: {e}"
                ))
            })?;
    }
    Ok(out)
}

/// The audit entry a command makes: action, patient, and what it was
/// asked (no secrets); `None` for the commands that only read.
fn audited(cmd: &AdminCommand) -> Option<(&'static str, Option<i64>, Value)> {
    Some(match cmd {
        AdminCommand::Ward(WardCommand::Add { name }) => ("ward.add", None, json!({"name": name})),
        AdminCommand::User(UserCommand::Add {
            username,
            role,
            wards,
            sso_only,
        }) => (
            "user.add",
            None,
            json!({"username": username, "role": role, "wards": wards, "sso_only": sso_only}),
        ),
        AdminCommand::User(UserCommand::Disable { username }) => {
            ("user.disable", None, json!({"username": username}))
        }
        AdminCommand::User(UserCommand::Enable { username }) => {
            ("user.enable", None, json!({"username": username}))
        }
        AdminCommand::User(UserCommand::Password { username }) => {
            ("user.password", None, json!({"username": username}))
        }
        AdminCommand::User(UserCommand::Role { username, role }) => (
            "user.role",
            None,
            json!({"username": username, "role": role}),
        ),
        AdminCommand::User(UserCommand::Wards { username, wards }) => (
            "user.wards",
            None,
            json!({"username": username, "wards": wards}),
        ),
        AdminCommand::Token(TokenCommand::Create {
            username,
            expires_in,
        }) => (
            "token.create",
            None,
            json!({"username": username, "expires_in": expires_in}),
        ),
        AdminCommand::Token(TokenCommand::Revoke { .. }) => ("token.revoke", None, json!({})),
        AdminCommand::Patient(PatientCommand::Admit { ward, pathway, .. }) => (
            "patient.admit",
            None,
            json!({"ward": ward, "pathway": pathway}),
        ),
        AdminCommand::Patient(PatientCommand::Discharge { patient }) => {
            ("patient.discharge", Some(*patient), json!({}))
        }
        AdminCommand::Device(DeviceCommand::Provision { kind, patient }) => {
            ("device.provision", *patient, json!({"kind": kind}))
        }
        AdminCommand::Device(DeviceCommand::Assign { device, patient }) => {
            ("device.assign", Some(*patient), json!({"device": device}))
        }
        AdminCommand::Device(DeviceCommand::Revoke { device }) => {
            ("device.revoke", None, json!({"device": device}))
        }
        AdminCommand::Device(DeviceCommand::Unassign { device }) => {
            ("device.unassign", None, json!({"device": device}))
        }
        AdminCommand::Mqtt(MqttCommand::Export { .. }) => ("mqtt.export", None, json!({})),
        // Who sent a test page to the on-call service.
        AdminCommand::Notify(NotifyCommand::Test) => ("notify.test", None, json!({})),
        // Every patient's data leaves the database: who took it, and where.
        AdminCommand::Backup { to } => ("backup", None, json!({"to": to})),
        AdminCommand::User(UserCommand::List)
        | AdminCommand::Device(DeviceCommand::List { .. })
        | AdminCommand::Stats => return None,
    })
}

/// Who ran `vigil admin`, as the operating system says (through `sudo`, the
/// person, not root).
fn os_user() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

async fn execute(
    store: &dyn Store,
    pathways: &vigil_rules::Pathways,
    config: &Config,
    cmd: AdminCommand,
    now: chrono::DateTime<Utc>,
) -> Result<Value, Failure> {
    Ok(match cmd {
        AdminCommand::Ward(WardCommand::Add { name }) => {
            json!({"id": store.ward_add(&name).await.map_err(store_err)?.id})
        }
        AdminCommand::User(UserCommand::Add {
            username,
            role,
            wards,
            sso_only,
        }) => {
            // Single sign-on only: a password nobody is told, kept nowhere,
            // so no password sign-in can succeed until an admin sets one.
            let password = match sso_only {
                true => vigil_store::secrets::random_secret(),
                false => password_from_stdin()?,
            };
            json!({"id": admin::add_user(store, &username, &role, &wards, &password).await.map_err(admin_err)?})
        }
        AdminCommand::User(UserCommand::List) => {
            let mut users = Vec::new();
            for u in store.users_list().await.map_err(store_err)? {
                let wards: Vec<String> = admin::wards_of(store, &u.ward_ids)
                    .await
                    .map_err(store_err)?
                    .into_iter()
                    .map(|w| w.name)
                    .collect();
                users.push(json!({"username": u.username, "role": u.role, "wards": wards, "disabled_at": u.disabled_at}));
            }
            json!({"users": users})
        }
        AdminCommand::User(UserCommand::Disable { username }) => {
            let ended = store
                .user_disable(&username, now)
                .await
                .map_err(|e| no_user(e, &username))?;
            let user = store
                .user_by_username(&username)
                .await
                .map_err(store_err)?
                .ok_or_else(|| Failure::Usage(format!("--username: no user {username:?}")))?;
            json!({"username": username, "disabled_at": user.disabled_at, "revoked": ended.revoked})
        }
        AdminCommand::User(UserCommand::Enable { username }) => {
            store
                .user_enable(&username)
                .await
                .map_err(|e| no_user(e, &username))?;
            json!({"username": username, "enabled": true})
        }
        AdminCommand::User(UserCommand::Password { username }) => {
            let password = password_from_stdin()?;
            let ended = admin::set_password(store, &username, &password, now)
                .await
                .map_err(|e| match e {
                    AdminError::Store(s) => no_user(s, &username),
                    other => admin_err(other),
                })?;
            json!({"username": username, "sessions_revoked": ended.revoked})
        }
        AdminCommand::User(UserCommand::Role { username, role }) => {
            let ended = admin::set_role(store, &username, &role, now)
                .await
                .map_err(|e| match e {
                    AdminError::Store(s) => no_user(s, &username),
                    other => admin_err(other),
                })?;
            json!({"username": username, "role": role, "sessions_revoked": ended.revoked})
        }
        AdminCommand::User(UserCommand::Wards { username, wards }) => {
            let now_held =
                admin::set_wards(store, &username, &wards)
                    .await
                    .map_err(|e| match e {
                        AdminError::Store(s) => no_user(s, &username),
                        other => admin_err(other),
                    })?;
            let names: Vec<String> = now_held.into_iter().map(|w| w.name).collect();
            json!({"username": username, "wards": names})
        }
        AdminCommand::Token(TokenCommand::Create {
            username,
            expires_in,
        }) => {
            // API tokens expire (90 days unless asked otherwise): a token
            // left in an old script or a leaked CI log stops working on its own.
            let ttl = match expires_in.as_str() {
                "never" => None,
                d => Some(
                    humantime::parse_duration(d)
                        .ok()
                        .and_then(|d| chrono::Duration::from_std(d).ok())
                        .filter(|d| *d > chrono::Duration::zero())
                        .ok_or_else(|| Failure::Usage(format!("--expires-in: {d:?} is not a duration (e.g. \"90d\", \"12h\", or \"never\")")))?,
                ),
            };
            let user = store
                .user_by_username(&username)
                .await
                .map_err(store_err)?
                .ok_or_else(|| Failure::Usage(format!("--username: no user {username:?}")))?;
            if user.disabled_at.is_some() {
                return Err(Failure::Usage(format!(
                    "--username: {username:?} is disabled (vigil admin user enable first)"
                )));
            }
            let token = admin::issue_token(store, user.id, TokenKind::Api, now, ttl)
                .await
                .map_err(admin_err)?;
            json!({"token": token, "expires_at": ttl.map(|t| (now + t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))})
        }
        AdminCommand::Token(TokenCommand::Revoke { token }) => {
            if !store
                .token_revoke(&hash_secret(&token), now)
                .await
                .map_err(store_err)?
            {
                return Err(Failure::Usage("--token: no such live token".into()));
            }
            json!({"revoked": true})
        }
        AdminCommand::Patient(PatientCommand::Admit {
            ward,
            name,
            nhs_number,
            pathway,
            spo2_scale,
        }) => {
            if !pathways.iter().any(|p| p.name == pathway) {
                let known: Vec<&str> = pathways.iter().map(|p| p.name.as_str()).collect();
                return Err(Failure::Usage(format!(
                    "--pathway: no pathway {pathway:?} (loaded: {})",
                    known.join(", ")
                )));
            }
            let req = AdmitRequest {
                ward,
                name,
                nhs_number,
                pathway,
                spo2_scale,
            };
            let done = admin::admit(store, req, "vigil-admin", now)
                .await
                .map_err(admin_err)?;
            json!({"id": done.id, "readmitted": done.readmitted})
        }
        AdminCommand::Patient(PatientCommand::Discharge { patient }) => {
            let done = store
                .patient_discharge(patient, "vigil-admin", now)
                .await
                .map_err(store_err)?;
            let resolved: Vec<i64> = done.resolved.iter().map(|a| a.id).collect();
            json!({"id": patient, "discharged_at": done.discharged_at, "resolved_alerts": resolved})
        }
        AdminCommand::Device(DeviceCommand::Provision { kind, patient }) => serde_json::to_value(
            admin::provision(store, &kind, patient, now)
                .await
                .map_err(admin_err)?,
        )
        .map_err(|e| Failure::Other(e.to_string()))?,
        AdminCommand::Device(DeviceCommand::Assign { device, patient }) => {
            store
                .device_assign(&device, patient)
                .await
                .map_err(store_err)?;
            json!({"device_id": device, "patient_id": patient})
        }
        AdminCommand::Device(DeviceCommand::Revoke { device }) => {
            let at = store.device_revoke(&device, now).await.map_err(store_err)?;
            json!({"device_id": device, "revoked_at": at})
        }
        AdminCommand::Device(DeviceCommand::Unassign { device }) => {
            let now_with = store
                .devices_list(vigil_store::DeviceQuery::One(&device))
                .await
                .map_err(store_err)?
                .pop()
                .ok_or_else(|| Failure::Usage(format!("device {device} not found")))?
                .patient_id
                .ok_or_else(|| Failure::Usage(format!("device: {device} is no one's now")))?;
            match store.device_unassign(&device, now_with).await {
                Ok(()) => {}
                // Moved or returned by someone else since the look-up.
                Err(vigil_store::StoreError::Conflict(m)) => return Err(Failure::Usage(m)),
                Err(e) => return Err(store_err(e)),
            }
            json!({"device_id": device, "patient_id": now_with, "unassigned_at": now})
        }
        AdminCommand::Device(DeviceCommand::List { unassigned }) => {
            let query = if unassigned {
                vigil_store::DeviceQuery::Unassigned
            } else {
                vigil_store::DeviceQuery::All
            };
            let devices = store.devices_list(query).await.map_err(store_err)?;
            json!({ "devices": devices })
        }
        AdminCommand::Notify(NotifyCommand::Test) => {
            let settings = config
                .notify_settings()
                .map_err(|e| Failure::Usage(e.0))?
                .ok_or_else(|| Failure::Usage("notify.webhook_url: not set".into()))?;
            let status = crate::notify::post_test(&settings, now)
                .await
                .map_err(Failure::Other)?;
            json!({"webhook_url": settings.webhook_url, "status": status})
        }
        AdminCommand::Mqtt(MqttCommand::Export { dir }) => {
            crate::mqtt_export::export(store, &config.mqtt, &dir).await?
        }
        AdminCommand::Stats => serde_json::to_value(store.stats().await.map_err(store_err)?)
            .map_err(|e| Failure::Other(e.to_string()))?,
        AdminCommand::Backup { to } => backup(store, &to).await?,
    })
}

/// `admin backup --to FILE`: the copy goes into a file created here, new
/// and readable by its owner only (it holds every patient's data), and is
/// on disk before the command answers. Nothing is left behind on failure.
async fn backup(store: &dyn Store, to: &std::path::Path) -> Result<Value, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Failure::Usage(format!(
                "--to: {} exists; a backup never overwrites a file",
                to.display()
            )),
            _ => Failure::Usage(format!("--to: cannot create {}: {e}", to.display())),
        })?;
    let written = match store.backup_to(to).await {
        // The file's contents, then its name in its folder: a new file's
        // directory entry is not on disk until the folder is synced too,
        // and a power cut could otherwise lose a backup already answered.
        Ok(n) => std::fs::File::open(to)
            .and_then(|f| f.sync_all())
            .and_then(|()| sync_parent(to))
            .map(|()| n)
            .map_err(|e| Failure::Other(format!("{}: {e}", to.display()))),
        Err(vigil_store::StoreError::Config(m)) => Err(Failure::Usage(format!("backup: {m}"))),
        Err(e) => Err(store_err(e)),
    };
    match written {
        Ok(bytes) => Ok(json!({"backup": to, "bytes": bytes})),
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(e)
        }
    }
}

/// Sync the folder holding `path` (its directory entry).
fn sync_parent(path: &std::path::Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// One line of stdin, without its line ending: a password.
fn password_from_stdin() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Other(format!("reading the password from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// An unknown `--username`, said as the flag (exit 2).
fn no_user(e: vigil_store::StoreError, username: &str) -> Failure {
    match e {
        vigil_store::StoreError::NotFound(_) => {
            Failure::Usage(format!("--username: no user {username:?}"))
        }
        other => store_err(other),
    }
}

fn store_err(e: vigil_store::StoreError) -> Failure {
    match e {
        vigil_store::StoreError::NotFound(what) => Failure::Usage(format!("{what} not found")),
        vigil_store::StoreError::Conflict(_) => {
            Failure::Usage("conflicts with an existing record".into())
        }
        other => Failure::Other(other.to_string()),
    }
}

fn admin_err(e: AdminError) -> Failure {
    match e {
        AdminError::Invalid(m) | AdminError::Conflict(m) => Failure::Usage(m),
        AdminError::Store(s) => store_err(s),
    }
}
