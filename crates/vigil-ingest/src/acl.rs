//! Which topics a device may use: its own, and nothing else.
//!
//! A device publishes only `vigil/v1/dev/{its id}/obs|ecg|status` and
//! subscribes only to `vigil/v1/dev/{its id}/cmd` (CONTRACTS.md §2). The
//! check is exact string equality on purpose: a device has no reason to use
//! wildcards, and accepting `+` or `#` in its filter would let it listen to
//! other patients' commands.

/// Topic prefix for every device.
pub const PREFIX: &str = "vigil/v1/dev/";

/// The uplink kinds a device may publish.
pub const UPLINKS: [&str; 3] = ["obs", "ecg", "status"];

/// Split `vigil/v1/dev/{id}/{kind}` into `(id, kind)`.
pub fn parse_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(PREFIX)?;
    let (id, kind) = rest.split_once('/')?;
    if id.is_empty() || kind.contains('/') || !valid_device_id(id) {
        return None;
    }
    Some((id, kind))
}

/// Device ids are what `vigil admin device provision` issues: ASCII letters,
/// digits and `-`. Anything else could smuggle MQTT wildcards or levels.
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// May `device` publish to `topic`?
pub fn may_publish(device: &str, topic: &str) -> bool {
    matches!(parse_topic(topic), Some((id, kind)) if id == device && UPLINKS.contains(&kind))
}

/// May `device` subscribe to `filter`?
pub fn may_subscribe(device: &str, filter: &str) -> bool {
    valid_device_id(device) && filter == cmd_topic(device)
}

/// The device's downlink topic.
pub fn cmd_topic(device: &str) -> String {
    format!("{PREFIX}{device}/cmd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_publishes_only_under_its_own_id() {
        assert!(may_publish("dev-a", "vigil/v1/dev/dev-a/obs"));
        assert!(may_publish("dev-a", "vigil/v1/dev/dev-a/ecg"));
        assert!(may_publish("dev-a", "vigil/v1/dev/dev-a/status"));
        assert!(!may_publish("dev-a", "vigil/v1/dev/dev-b/obs"));
        assert!(!may_publish("dev-a", "vigil/v1/dev/dev-a/cmd"));
        assert!(!may_publish("dev-a", "vigil/v1/dev/dev-a/obs/extra"));
        assert!(!may_publish("dev-a", "vigil/v1/dev/+/obs"));
        assert!(!may_publish("dev-a", "other/topic"));
    }

    #[test]
    fn device_subscribes_only_to_its_own_cmd() {
        assert!(may_subscribe("dev-a", "vigil/v1/dev/dev-a/cmd"));
        assert!(!may_subscribe("dev-a", "vigil/v1/dev/+/cmd"));
        assert!(!may_subscribe("dev-a", "vigil/v1/dev/#"));
        assert!(!may_subscribe("dev-a", "#"));
        assert!(!may_subscribe("dev-a", "vigil/v1/dev/dev-b/cmd"));
        assert!(!may_subscribe("dev-a", "vigil/v1/dev/dev-a/obs"));
    }

    #[test]
    fn wildcards_and_levels_are_not_device_ids() {
        for bad in ["", "a/b", "+", "#", "a+", "dev a", &"x".repeat(65)] {
            assert!(!valid_device_id(bad), "{bad:?}");
        }
        assert_eq!(
            parse_topic("vigil/v1/dev/dev-1/obs"),
            Some(("dev-1", "obs"))
        );
        assert_eq!(parse_topic("vigil/v1/dev/+/obs"), None);
    }
}
