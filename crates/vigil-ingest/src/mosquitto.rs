//! Mosquitto's password and ACL files for an external broker (pure).
//!
//! `vigil admin mqtt export` renders these from the store, so a Mosquitto in
//! front of Vigil enforces the same device identity and topic rules as the
//! embedded broker ([`crate::acl`]): each device publishes only its own
//! `obs`, `ecg` and `status` and reads only its own `cmd`; the ingest's
//! service account reads every device's uplinks and writes every `cmd`.
//! Revoked devices are simply absent: no password line, no ACL entries.
//!
//! Mosquitto drops a publish a device may not make and keeps the connection
//! open (the embedded broker disconnects instead).

use std::fmt::Write as _;

use crate::acl::{self, PREFIX, UPLINKS};

/// A device's account on the broker.
#[derive(Clone, Copy, Debug)]
pub struct DeviceAccount<'a> {
    pub device_id: &'a str,
    pub username: &'a str,
    /// Mosquitto's `$7$…` hash of the device secret.
    pub hash: &'a str,
}

/// The ingest's account: its username and Mosquitto hash of its password.
#[derive(Clone, Copy, Debug)]
pub struct ServiceAccount<'a> {
    pub username: &'a str,
    pub hash: &'a str,
}

/// The two files' contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MosquittoFiles {
    pub password_file: String,
    pub acl_file: String,
}

/// Why the files cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    /// The service username cannot stand in the files as it is.
    #[error("mqtt.username: {0}")]
    ServiceUsername(&'static str),
    /// A stored device id or username that could smuggle topic levels,
    /// wildcards or file syntax (never issued by `vigil admin device provision`).
    #[error("device {0:?}: not a valid device id or MQTT username")]
    Device(String),
}

/// Can `name` stand in `user:hash` and on a `user NAME` line? No `:` (the
/// password file's separator), no white space or control characters (the
/// ACL file's line and word ends), not empty.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

/// Render both files. Devices appear in the order given.
pub fn render(
    service: ServiceAccount<'_>,
    devices: &[DeviceAccount<'_>],
) -> Result<MosquittoFiles, ExportError> {
    if !valid_username(service.username) {
        return Err(ExportError::ServiceUsername(
            "empty, or contains ':', white space or a control character",
        ));
    }
    for d in devices {
        if !acl::valid_device_id(d.device_id) || !valid_username(d.username) {
            return Err(ExportError::Device(d.device_id.to_string()));
        }
        if d.username == service.username {
            return Err(ExportError::ServiceUsername(
                "is also a device's MQTT username",
            ));
        }
    }
    Ok(MosquittoFiles {
        password_file: password_file(service, devices),
        acl_file: acl_file(service.username, devices),
    })
}

fn password_file(service: ServiceAccount<'_>, devices: &[DeviceAccount<'_>]) -> String {
    let mut out = format!("{}:{}\n", service.username, service.hash);
    for d in devices {
        let _ = writeln!(out, "{}:{}", d.username, d.hash);
    }
    out
}

fn acl_file(service_username: &str, devices: &[DeviceAccount<'_>]) -> String {
    let mut out = String::from(
        "# Written by `vigil admin mqtt export`: re-export rather than edit.\n\
         # Each device publishes only its own uplinks and reads only its own cmd;\n\
         # the ingest reads every device's uplinks and writes every cmd.\n",
    );
    let _ = writeln!(out, "\nuser {service_username}");
    for kind in UPLINKS {
        let _ = writeln!(out, "topic read {PREFIX}+/{kind}");
    }
    let _ = writeln!(out, "topic write {PREFIX}+/cmd");
    for d in devices {
        let _ = writeln!(out, "\nuser {}", d.username);
        for kind in UPLINKS {
            let _ = writeln!(out, "topic write {PREFIX}{}/{kind}", d.device_id);
        }
        let _ = writeln!(out, "topic read {}", acl::cmd_topic(d.device_id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: ServiceAccount<'static> = ServiceAccount {
        username: "vigil-ingest",
        hash: "$7$210000$c2FsdA==$aGFzaA==",
    };

    fn dev<'a>(id: &'a str, hash: &'a str) -> DeviceAccount<'a> {
        DeviceAccount {
            device_id: id,
            username: id,
            hash,
        }
    }

    #[test]
    fn password_file_has_one_line_per_account_service_first() {
        let f = render(
            SERVICE,
            &[
                dev("oximeter-a1", "$7$1000$YQ==$Yg=="),
                dev("hub-b2", "$7$1000$Yw==$ZA=="),
            ],
        )
        .expect("render");
        assert_eq!(
            f.password_file,
            "vigil-ingest:$7$210000$c2FsdA==$aGFzaA==\noximeter-a1:$7$1000$YQ==$Yg==\nhub-b2:$7$1000$Yw==$ZA==\n"
        );
    }

    #[test]
    fn acl_gives_each_device_its_own_topics_and_the_ingest_all_uplinks_and_cmd() {
        let f = render(SERVICE, &[dev("oximeter-a1", "h"), dev("hub-b2", "h")]).expect("render");
        let body: Vec<&str> = f.acl_file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "",
                "user vigil-ingest",
                "topic read vigil/v1/dev/+/obs",
                "topic read vigil/v1/dev/+/ecg",
                "topic read vigil/v1/dev/+/status",
                "topic write vigil/v1/dev/+/cmd",
                "",
                "user oximeter-a1",
                "topic write vigil/v1/dev/oximeter-a1/obs",
                "topic write vigil/v1/dev/oximeter-a1/ecg",
                "topic write vigil/v1/dev/oximeter-a1/status",
                "topic read vigil/v1/dev/oximeter-a1/cmd",
                "",
                "user hub-b2",
                "topic write vigil/v1/dev/hub-b2/obs",
                "topic write vigil/v1/dev/hub-b2/ecg",
                "topic write vigil/v1/dev/hub-b2/status",
                "topic read vigil/v1/dev/hub-b2/cmd",
            ]
        );
        // Before the first `user` line Mosquitto applies topics to anonymous
        // clients: the file must grant them nothing.
        let first_user = f.acl_file.find("\nuser ").expect("a user line");
        assert!(
            !f.acl_file[..first_user].contains("\ntopic"),
            "{}",
            f.acl_file
        );
        assert!(
            !f.acl_file.contains("pattern"),
            "no %u patterns: they would apply to every user"
        );
    }

    #[test]
    fn no_devices_leaves_only_the_ingest() {
        let f = render(SERVICE, &[]).expect("render");
        assert_eq!(f.password_file.lines().count(), 1);
        assert_eq!(f.acl_file.matches("\nuser ").count(), 1);
    }

    #[test]
    fn names_that_would_break_the_files_are_refused() {
        for bad in ["", "a:b", "a b", "a\nuser x", "tab\t"] {
            let service = ServiceAccount {
                username: bad,
                hash: "h",
            };
            assert!(
                matches!(render(service, &[]), Err(ExportError::ServiceUsername(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            render(
                ServiceAccount {
                    username: "hub-1",
                    hash: "h"
                },
                &[dev("hub-1", "h")]
            ),
            Err(ExportError::ServiceUsername(_))
        ));
        for bad_id in ["+", "a/b", "#", "a b"] {
            assert_eq!(
                render(SERVICE, &[dev(bad_id, "h")]),
                Err(ExportError::Device(bad_id.into()))
            );
        }
        assert_eq!(
            ExportError::ServiceUsername("is also a device's MQTT username").to_string(),
            "mqtt.username: is also a device's MQTT username"
        );
    }
}
