//! Contract tests against the server side: the kit's codes, units and
//! bounds agree with `vigil-clinical`, and what the kit encodes passes the
//! server's own observation validation.

use vigil_kit::{Acvpu, Code, ObsMessage, Observation, Posture};

/// The kit's "impossible value" bounds must contain the server's validity
/// ranges: the kit must never refuse at the bedside a reading the server
/// would have accepted. (Values between the two are sent and rejected by
/// the server with reason `range`, visible to admins.)
#[test]
fn kit_codes_units_and_bounds_agree_with_vigil_clinical() {
    assert_eq!(Code::ALL.len(), vigil_clinical::Code::ALL.len());
    for kit in Code::ALL {
        let server = vigil_clinical::Code::parse(kit.as_str())
            .unwrap_or_else(|| panic!("server does not know {kit}"));
        assert_eq!(kit.unit(), server.unit(), "{kit}");
        match (kit.bounds(), server.valid_range()) {
            (Some((klo, khi)), Some((slo, shi))) => {
                assert!(
                    klo <= slo && khi >= shi,
                    "{kit}: kit {klo}..{khi} server {slo}..{shi}"
                )
            }
            (None, None) => {}
            other => panic!("{kit}: numeric/text mismatch {other:?}"),
        }
    }
}

#[test]
fn every_encoded_observation_passes_server_validation() {
    let mut obs: Vec<Observation> = Vec::new();
    for code in Code::ALL {
        if let Some((lo, hi)) = vigil_clinical::Code::parse(code.as_str())
            .unwrap()
            .valid_range()
        {
            for v in [lo, hi, (lo + hi) / 2.0] {
                obs.push(Observation::number(code, v).unwrap());
            }
        }
    }
    for a in [Acvpu::A, Acvpu::C, Acvpu::V, Acvpu::P, Acvpu::U] {
        obs.push(Observation::acvpu(a));
    }
    for p in [Posture::Upright, Posture::Lying, Posture::Moving] {
        obs.push(Observation::posture(p));
    }
    let msg = ObsMessage {
        seq: 1,
        ts_ms: 1_795_335_303_000,
        obs: &obs,
    };
    let mut buf = vec![0u8; msg.encoded_len().unwrap()];
    let n = msg.encode(&mut buf).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    let items = json["obs"].as_array().unwrap();
    assert_eq!(items.len(), obs.len());
    for item in items {
        let value: vigil_clinical::Value = serde_json::from_value(item["value"].clone()).unwrap();
        let checked = vigil_clinical::validate(
            item["code"].as_str().unwrap(),
            item["unit"].as_str(),
            &value,
        );
        assert!(checked.is_ok(), "{item}: {checked:?}");
    }
}
