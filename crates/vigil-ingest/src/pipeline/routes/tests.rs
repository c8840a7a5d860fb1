//! A batch is committed with the routes the store has, after every kind of
//! route change, including writes that bypass the store's code (another
//! process's SQL on the same database file).

use chrono::{TimeZone, Utc};
use vigil_store::{NewDevice, NewPatient};

use super::*;

const DEVICES: [&str; 3] = ["hub-a", "hub-b", "never-provisioned"];

/// The routes a batch of `devices` is committed with, as the intake does
/// it: routed under the remembered generation; if the commit finds that the
/// generation moved, everything is forgotten and routed again.
async fn committed_with(
    routes: &mut Routes,
    store: &dyn Store,
    devices: &[&str],
) -> HashMap<String, DeviceRoute> {
    for _ in 0..3 {
        let generation = routes.refresh(store, devices).await.expect("refresh");
        if store
            .store_routed_batch(generation, &[], &[])
            .await
            .expect("commit")
            .is_some()
        {
            return devices
                .iter()
                .filter_map(|d| routes.known().get(*d).map(|r| (d.to_string(), *r)))
                .collect();
        }
        routes.forget();
    }
    panic!("the batch was never committed");
}

/// A batch of `DEVICES` is committed with the routes the store has now.
async fn assert_fresh(routes: &mut Routes, store: &dyn Store, after: &str) {
    let committed = committed_with(routes, store, &DEVICES).await;
    let fresh = store.device_routes(&DEVICES).await.expect("routes");
    assert_eq!(committed, fresh, "after {after}");
}

async fn lookup(routes: &mut Routes, store: &dyn Store, device: &str) -> Option<DeviceRoute> {
    committed_with(routes, store, &[device])
        .await
        .get(device)
        .copied()
}

#[tokio::test]
async fn remembered_routes_follow_every_change_from_any_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = vigil_store::connect(&url).await.expect("store");
    // Another writer on the same file, as `vigil admin` or an operator is.
    let other = sqlx::SqlitePool::connect(&url).await.expect("other pool");
    let sql = |q: &'static str| {
        let other = other.clone();
        async move { sqlx::query(q).execute(&other).await.expect(q) }
    };
    let at = Utc
        .with_ymd_and_hms(2026, 12, 5, 8, 0, 0)
        .single()
        .expect("time");
    let ward = store.ward_add("Ward").await.expect("ward");
    let other_ward = store.ward_add("Other").await.expect("ward");
    let admit = |name: &str| NewPatient {
        ward_id: ward.id,
        name: name.into(),
        nhs_number: vigil_store::nhs::test_range_for(name),
        pathway: "default".into(),
        spo2_scale: 1,
        spo2_scale_set_by: None,
        admitted_at: at,
    };
    let ann = store.patient_admit(admit("Ann")).await.expect("admit").id;
    let bob = store.patient_admit(admit("Bob")).await.expect("admit").id;
    for (id, patient) in [("hub-a", Some(ann)), ("hub-b", None)] {
        store
            .device_provision(NewDevice {
                id: id.into(),
                kind: "hub".into(),
                mqtt_username: format!("mqtt-{id}"),
                secret_hash: "hash".into(),
                mosquitto_hash: None,
                patient_id: patient,
                created_at: at,
            })
            .await
            .expect("provision");
    }
    let mut routes = Routes::default();
    assert_fresh(&mut routes, &*store, "the first look-up").await;
    assert_eq!(
        lookup(&mut routes, &*store, "hub-a").await,
        Some(DeviceRoute {
            patient_id: ann,
            ward_id: ward.id
        })
    );

    store.device_assign("hub-b", bob).await.expect("assign");
    assert_fresh(&mut routes, &*store, "the store assigned hub-b").await;

    sql("UPDATE devices SET patient_id = (SELECT id FROM patients WHERE name = 'Bob') WHERE id = 'hub-a'").await;
    assert_fresh(&mut routes, &*store, "another writer moved hub-a to Bob").await;
    assert_eq!(
        lookup(&mut routes, &*store, "hub-a").await,
        Some(DeviceRoute {
            patient_id: bob,
            ward_id: ward.id
        })
    );

    sqlx::query("UPDATE patients SET ward_id = ? WHERE id = ?")
        .bind(other_ward.id)
        .bind(bob)
        .execute(&other)
        .await
        .expect("move ward");
    assert_fresh(&mut routes, &*store, "another writer moved Bob's ward").await;

    sql("UPDATE episodes SET discharged_at = '2026-12-05T09:00:00.000Z' WHERE patient_id = (SELECT id FROM patients WHERE name = 'Bob')").await;
    assert_fresh(&mut routes, &*store, "another writer discharged Bob").await;
    assert!(lookup(&mut routes, &*store, "hub-a").await.is_none());

    sql("UPDATE devices SET patient_id = (SELECT id FROM patients WHERE name = 'Ann') WHERE id = 'hub-b'").await;
    assert_fresh(
        &mut routes,
        &*store,
        "another writer moved hub-b back to Ann",
    )
    .await;

    sql("UPDATE devices SET revoked_at = '2026-12-05T10:00:00.000Z' WHERE id = 'hub-b'").await;
    assert_fresh(&mut routes, &*store, "another writer revoked hub-b").await;
    assert!(
        committed_with(&mut routes, &*store, &DEVICES)
            .await
            .is_empty()
    );
}
