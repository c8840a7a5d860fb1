//! `vigil admin mqtt export`: Mosquitto password and ACL files, so an
//! external Mosquitto enforces the device identity and topic rules of the
//! embedded broker (docs/security.md, "An external broker").
//!
//! Both files hold credentials (hashed, but guessable offline for a weak
//! service password), so each is written with mode 0600 to a temporary file
//! in the same folder and renamed over the old one: Mosquitto, reloading on
//! SIGHUP, never reads half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vigil_ingest::mosquitto::{self, DeviceAccount, ExportError, ServiceAccount};
use vigil_store::Store;
use vigil_store::secrets::{MOSQUITTO_SERVICE_ITERATIONS, mosquitto_hash, random_id};

use crate::Failure;
use crate::config::MqttConfig;

/// The password file's name in `--dir`.
pub const PASSWORD_FILE: &str = "mosquitto.passwd";
/// The ACL file's name in `--dir`.
pub const ACL_FILE: &str = "mosquitto.acl";

/// Write both files into `dir` (created if missing) and say what was written.
pub async fn export(store: &dyn Store, mqtt: &MqttConfig, dir: &Path) -> Result<Value, Failure> {
    let required = |key: &str, value: Option<&str>| -> Result<String, Failure> {
        value.filter(|v| !v.is_empty()).map(str::to_string).ok_or_else(|| {
            Failure::Usage(format!("{key}: required by `vigil admin mqtt export` (the ingest's account on the external broker)"))
        })
    };
    let username = required("mqtt.username", mqtt.username.as_deref())?;
    let password = required("mqtt.password", mqtt.password.as_deref())?;

    let accounts = store
        .mqtt_accounts()
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    let skipped: Vec<&str> = accounts
        .iter()
        .filter(|a| a.mosquitto_hash.is_none())
        .map(|a| a.device_id.as_str())
        .collect();
    if !skipped.is_empty() {
        eprintln!(
            "warning: left out {} device(s) provisioned before Vigil recorded a Mosquitto hash: {}; \
             re-provision them (`vigil admin device provision`, then `vigil admin device revoke` the old id)",
            skipped.len(),
            skipped.join(", ")
        );
    }
    let devices: Vec<DeviceAccount<'_>> = accounts
        .iter()
        .filter_map(|a| {
            a.mosquitto_hash.as_deref().map(|hash| DeviceAccount {
                device_id: &a.device_id,
                username: &a.mqtt_username,
                hash,
            })
        })
        .collect();
    let service_hash = mosquitto_hash(&password, MOSQUITTO_SERVICE_ITERATIONS);
    let files = mosquitto::render(
        ServiceAccount {
            username: &username,
            hash: &service_hash,
        },
        &devices,
    )
    .map_err(|e| match e {
        ExportError::ServiceUsername(_) => Failure::Usage(e.to_string()),
        ExportError::Device(_) => Failure::Other(e.to_string()),
    })?;

    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Usage(format!("--dir: cannot create {}: {e}", dir.display())))?;
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Failure::Usage(format!("--dir: {}: {e}", dir.display())))?;
    let password_file = write_private(&dir, PASSWORD_FILE, &files.password_file)?;
    let acl_file = write_private(&dir, ACL_FILE, &files.acl_file)?;
    Ok(json!({
        "password_file": password_file,
        "acl_file": acl_file,
        "devices": devices.len(),
        "skipped": skipped,
    }))
}

/// Write `contents` to `dir/name` with mode 0600, atomically.
fn write_private(dir: &Path, name: &str, contents: &str) -> Result<PathBuf, Failure> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", random_id(8)));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        // The rename itself survives a crash only once the folder is synced.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure::Other(format!("writing {}: {e}", path.display()))
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_replace_the_old_one_with_mode_0600_and_leave_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(ACL_FILE), "old").expect("old file");
        let path = write_private(dir.path(), ACL_FILE, "new\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new\n");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [ACL_FILE]);
    }
}
