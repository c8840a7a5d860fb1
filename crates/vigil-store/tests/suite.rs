//! The store test suite: every test is written once against `&dyn Store`
//! and runs on both backends, each on a fresh database (`sqlite::<name>`
//! and `postgres::<name>`). The PostgreSQL half starts its own throwaway
//! cluster (see `support`).

mod support;

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use vigil_store::*;

/// Generate `sqlite::$name` and `postgres::$name` for each suite test.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let b = crate::support::sqlite().await;
                    super::$name(&*b.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(b) = crate::support::postgres().await else { return };
                    super::$name(&*b.store).await;
                }
            )*
        }
    };
}

both_backends!(
    device_routes_answer_a_batch_like_device_route_does,
    route_generation_moves_with_every_route_change_and_only_then,
    a_routed_batch_stores_only_under_the_generation_it_was_routed_by,
    score_insert_many_is_all_or_nothing,
    the_earlier_score_is_a_day_old_else_the_stays_first,
    wards_are_unique_and_found_by_name_or_id,
    users_carry_their_wards_and_unique_names,
    a_users_wards_are_replaced_whole,
    usernames_are_found_whatever_their_ascii_case,
    a_role_change_ends_the_sessions_not_the_api_tokens,
    tokens_expire_strictly_and_revoke_once,
    a_disabled_account_has_no_live_credentials,
    idle_sessions_expire_and_api_tokens_do_not,
    admit_opens_one_episode_and_discharge_closes_it,
    an_nhs_number_is_admitted_once_at_a_time,
    admit_with_a_bad_scale_writes_nothing,
    devices_provision_assign_route_and_revoke,
    a_device_is_claimed_only_while_it_is_no_ones,
    a_device_is_returned_only_from_its_patient,
    a_device_is_revoked_only_while_it_is_whose_it_was_seen_to_be,
    devices_are_listed_with_their_patient_ward_and_last_message,
    revoked_devices_are_listed_since_a_time,
    mqtt_accounts_are_the_unrevoked_devices_with_their_mosquitto_hash,
    discharge_unassigns_devices,
    device_status_keeps_the_last_report_per_device,
    device_statuses_recorded_together_keep_the_last_and_skip_unknown_devices,
    batch_reports_new_and_duplicates_in_input_order,
    large_batches_give_each_observation_its_own_id,
    duplicate_never_overwrites_the_stored_reading,
    failed_batch_leaves_nothing_behind,
    uplink_batch_stores_messages_and_chunks_together_or_neither,
    concurrent_overlapping_batches_store_each_message_once,
    rejected_messages_are_kept_and_counted,
    observation_query_filters_code_and_includes_both_edges,
    times_are_kept_to_the_millisecond,
    max_points_keeps_each_codes_extremes,
    a_long_series_is_reduced_as_it_is_read_exactly_as_when_read_whole,
    a_long_score_history_is_reduced_as_it_is_read_and_its_newest_read_backwards,
    latest_per_code_is_as_of_a_time_and_breaks_ties_by_insert,
    readings_for_scoring_answer_like_one_patient_at_a_time,
    episode_settings_many_answer_like_one_patient_at_a_time,
    patients_list_shows_latest_readings_per_ward,
    discharged_patients_are_listed_until_admitted_again,
    text_sorts_bytewise_whatever_the_locale,
    episode_update_records_who_and_when,
    the_escalation_plan_is_the_stays_own_with_who_recorded_it,
    plans_recorded_on_a_ward_since_are_given_as_they_are_now,
    follow_ups_are_the_stays_until_raised_or_taken_back,
    failed_episode_update_changes_nothing,
    scores_history_is_ordered_by_the_time_it_describes,
    history_pages_are_bounded_and_start_where_asked,
    stats_count_what_is_stored,
    ecg_chunks_dedup_and_range_overlaps,
    large_ecg_batches_keep_each_chunks_outcome,
    derived_observations_are_queryable,
    ecg_results_store_beats_and_heart_rates_together_or_neither,
    alert_fires_raise_update_and_ignore_superseded_readings,
    alerts_fired_together_see_each_other_and_store_all_or_nothing,
    scores_and_alerts_of_a_pass_store_together_or_neither,
    worker_progress_moves_up_with_a_pass_and_names_what_no_pass_finished,
    ecg_progress_moves_up_with_a_pass_and_names_the_chunks_no_pass_analysed,
    live_alert_rules_answer_like_alerts_list,
    alert_lifecycle_is_audited_and_guarded,
    the_alert_trail_is_read_in_order_and_the_webhook_progress_starts_at_its_end,
    the_webhook_lease_is_one_instances_until_it_lapses_or_is_given_up,
    discharge_resolves_the_live_alerts_and_nothing_new_is_raised,
    alerts_list_filters_and_due_escalations,
    resolved_alerts_are_listed_by_when_they_were_resolved,
    notes_are_kept_per_patient_newest_first,
    audit_trail_filters_newest_first,
    history_retention_deletes_only_what_is_older,
    a_logout_token_is_taken_once_until_it_expires_and_the_memory_is_bounded,
);

// --- helpers ---------------------------------------------------------------

/// An idle limit no test reaches, for tests that are not about it.
const DAY: Duration = Duration::days(1);

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0)
        .single()
        .expect("valid time")
}

async fn ward(s: &dyn Store, name: &str) -> i64 {
    s.ward_add(name).await.expect("ward").id
}

fn new_patient(ward_id: i64, name: &str) -> NewPatient {
    NewPatient {
        ward_id,
        name: name.into(),
        nhs_number: vigil_store::nhs::test_range_for(name),
        pathway: "copd".into(),
        spo2_scale: 1,
        spo2_scale_set_by: None,
        admitted_at: t(7, 0),
    }
}

async fn admit(s: &dyn Store, ward_id: i64, name: &str) -> i64 {
    s.patient_admit(new_patient(ward_id, name))
        .await
        .expect("admit")
        .id
}

fn num(code: &str, v: f64) -> NewObservation {
    NewObservation {
        code: code.into(),
        value: ObsValue::Number(v),
        unit: None,
    }
}

fn msg(
    device: &str,
    seq: u32,
    patient_id: i64,
    at: DateTime<Utc>,
    obs: Vec<NewObservation>,
) -> NewObsMessage {
    NewObsMessage {
        device_id: device.into(),
        seq,
        patient_id,
        measured_at: at,
        received_at: at + Duration::seconds(2),
        obs,
    }
}

fn device(id: &str, kind: &str, patient_id: Option<i64>) -> NewDevice {
    NewDevice {
        id: id.into(),
        kind: kind.into(),
        mqtt_username: format!("mqtt-{id}"),
        secret_hash: format!("hash-{id}"),
        mosquitto_hash: Some(format!("$7$1000$salt-{id}$hash-{id}")),
        patient_id,
        created_at: t(6, 0),
    }
}

fn stored_ids(o: &BatchOutcome) -> Vec<i64> {
    match o {
        BatchOutcome::Stored { observation_ids } => observation_ids.clone(),
        BatchOutcome::Duplicate => panic!("expected Stored, got Duplicate"),
    }
}

fn values(rows: &[ObservationRow]) -> Vec<(String, f64)> {
    rows.iter()
        .map(|r| match r.value {
            ObsValue::Number(v) => (r.code.clone(), v),
            ObsValue::Text(_) => (r.code.clone(), f64::NAN),
        })
        .collect()
}

async fn obs(s: &dyn Store, q: ObservationQuery) -> Vec<ObservationRow> {
    s.observations(q).await.expect("observations")
}

// --- wards, users, tokens --------------------------------------------------

async fn wards_are_unique_and_found_by_name_or_id(s: &dyn Store) {
    let a = s.ward_add("Respiratory").await.expect("ward");
    assert_eq!(a.name, "Respiratory");
    assert!(matches!(
        s.ward_add("Respiratory").await,
        Err(StoreError::Conflict(_))
    ));
    let b = s.ward_add("Cardiology").await.expect("ward");
    assert_ne!(a.id, b.id);
    assert_eq!(
        s.ward_find("Respiratory").await.expect("find"),
        Some(a.clone())
    );
    assert_eq!(s.ward_find(&b.id.to_string()).await.expect("find"), Some(b));
    assert_eq!(s.ward_find("Nowhere").await.expect("find"), None);
    assert_eq!(s.ward_find("999999").await.expect("find"), None);
}

/// `usernames_folded` finds the accounts whose username is the one asked
/// for but for ASCII case, all of them, and nothing else.
async fn usernames_are_found_whatever_their_ascii_case(s: &dyn Store) {
    for name in [
        "jane.doe@nhs.example",
        "JANE.DOE@nhs.example",
        "jane.doe@nhs.example.org",
        "sam",
    ] {
        s.user_add(NewUser {
            username: name.into(),
            role: Role::Nurse,
            password_hash: "h".into(),
            ward_ids: vec![],
        })
        .await
        .expect("user");
    }
    let mut both = s
        .usernames_folded("Jane.Doe@NHS.example")
        .await
        .expect("folded");
    both.sort();
    assert_eq!(both, ["JANE.DOE@nhs.example", "jane.doe@nhs.example"]);
    assert_eq!(s.usernames_folded("SAM").await.expect("folded"), ["sam"]);
    assert!(s.usernames_folded("sa").await.expect("folded").is_empty());
    assert!(s.usernames_folded("%").await.expect("folded").is_empty());
}

/// `user_set_wards` gives exactly the set named (a ward named twice once),
/// and seen at once by the account's credentials; an unknown account is
/// `NotFound` and changes nothing.
async fn a_users_wards_are_replaced_whole(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let w3 = ward(s, "W3").await;
    let uid = s
        .user_add(NewUser {
            username: "mo".into(),
            role: Role::Nurse,
            password_hash: "h".into(),
            ward_ids: vec![w1, w2],
        })
        .await
        .expect("user");
    let token = "a".repeat(64);
    s.token_insert(NewToken {
        user_id: uid,
        token_hash: token.clone(),
        kind: TokenKind::Api,
        created_at: t(7, 0),
        expires_at: None,
        sso: None,
    })
    .await
    .expect("token");
    s.user_set_wards("mo", &[w3, w2, w3]).await.expect("set");
    let wards = |u: Option<UserRecord>| u.expect("user").ward_ids;
    assert_eq!(
        wards(s.user_by_username("mo").await.expect("get")),
        [w2.min(w3), w2.max(w3)]
    );
    let seen = s
        .token_user(&token, t(8, 0), DAY)
        .await
        .expect("token")
        .expect("valid");
    assert_eq!(
        seen.ward_ids,
        [w2.min(w3), w2.max(w3)],
        "the credential sees the new set"
    );
    assert!(matches!(
        s.user_set_wards("nobody", &[w1]).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        wards(s.user_by_username("mo").await.expect("get")),
        [w2.min(w3), w2.max(w3)]
    );
}

/// `user_set_role`: the new role, seen by the account's API token at once;
/// its sessions ended in the same transaction; the same role again ends
/// nothing; an unknown account is `NotFound`.
async fn a_role_change_ends_the_sessions_not_the_api_tokens(s: &dyn Store) {
    let w = ward(s, "W1").await;
    let uid = s
        .user_add(NewUser {
            username: "kim".into(),
            role: Role::Nurse,
            password_hash: "h".into(),
            ward_ids: vec![w],
        })
        .await
        .expect("user");
    for (hash, kind) in [
        ("a".repeat(64), TokenKind::Api),
        ("b".repeat(64), TokenKind::Session),
    ] {
        s.token_insert(NewToken {
            user_id: uid,
            token_hash: hash,
            kind,
            created_at: t(7, 0),
            expires_at: None,
            sso: None,
        })
        .await
        .expect("token");
    }
    let ended = s
        .user_set_role("kim", Role::Admin, t(8, 0))
        .await
        .expect("role");
    assert_eq!(ended.revoked, 1, "the session, not the API token");
    let api = s
        .token_user(&"a".repeat(64), t(8, 1), DAY)
        .await
        .expect("token");
    assert_eq!(api.map(|u| u.role), Some(Role::Admin));
    assert!(
        s.token_user(&"b".repeat(64), t(8, 1), DAY)
            .await
            .expect("token")
            .is_none()
    );
    let same = s
        .user_set_role("kim", Role::Admin, t(9, 0))
        .await
        .expect("role");
    assert_eq!(same.revoked, 0);
    assert!(matches!(
        s.user_set_role("nobody", Role::Nurse, t(9, 0)).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn users_carry_their_wards_and_unique_names(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let id = s
        .user_add(NewUser {
            username: "nina".into(),
            role: Role::Nurse,
            password_hash: "$argon2id$x".into(),
            ward_ids: vec![w2, w1],
        })
        .await
        .expect("user");
    let u = s
        .user_by_username("nina")
        .await
        .expect("lookup")
        .expect("user exists");
    assert_eq!(
        (u.id, u.username.as_str(), u.role, u.password_hash.as_str()),
        (id, "nina", Role::Nurse, "$argon2id$x")
    );
    assert_eq!(
        u.ward_ids,
        [w1.min(w2), w1.max(w2)],
        "ward ids come back sorted"
    );
    let dup = NewUser {
        username: "nina".into(),
        role: Role::Admin,
        password_hash: "h".into(),
        ward_ids: vec![],
    };
    assert!(matches!(
        s.user_add(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.user_by_username("nobody")
            .await
            .expect("lookup")
            .is_none()
    );
    // A user on an unknown ward is refused as a whole.
    let bad = NewUser {
        username: "ghost".into(),
        role: Role::Nurse,
        password_hash: "h".into(),
        ward_ids: vec![999_999],
    };
    assert!(s.user_add(bad).await.is_err());
    assert!(s.user_by_username("ghost").await.expect("lookup").is_none());
}

/// A leaver: disabling ends every session and API token of the account in
/// its transaction, and no token of a disabled account authenticates;
/// enabling does not bring the old ones back; a new password ends the
/// sessions only.
async fn a_disabled_account_has_no_live_credentials(s: &dyn Store) {
    let w = ward(s, "W").await;
    let uid = s
        .user_add(NewUser {
            username: "lee".into(),
            role: Role::Nurse,
            password_hash: "h1".into(),
            ward_ids: vec![w],
        })
        .await
        .expect("user");
    let token = |hash: &str, kind: TokenKind| NewToken {
        user_id: uid,
        token_hash: hash.into(),
        kind,
        created_at: t(8, 0),
        expires_at: None,
        sso: None,
    };
    for (h, k) in [("s1", TokenKind::Session), ("a1", TokenKind::Api)] {
        s.token_insert(token(h, k)).await.expect("token");
    }
    let live = |h: &'static str| async move {
        s.token_user(h, t(8, 5), Duration::minutes(30))
            .await
            .expect("q")
            .is_some()
    };
    assert!(live("s1").await && live("a1").await);

    let ended = s.user_disable("lee", t(8, 10)).await.expect("disable");
    assert_eq!(ended.revoked, 2);
    assert!(!live("s1").await && !live("a1").await);
    let lee = s.user_by_username("lee").await.expect("q").expect("user");
    assert_eq!(lee.disabled_at, Some(t(8, 10)));
    // A token written for a disabled account (it should not be) is no key.
    s.token_insert(token("a2", TokenKind::Api))
        .await
        .expect("token");
    assert!(!live("a2").await);
    assert_eq!(
        s.user_disable("lee", t(8, 20))
            .await
            .expect("again")
            .revoked,
        1,
        "disabling again revokes what is live"
    );
    assert_eq!(
        s.user_by_username("lee")
            .await
            .expect("q")
            .expect("user")
            .disabled_at,
        Some(t(8, 10)),
        "disabled since the first time"
    );
    assert!(matches!(
        s.user_disable("nobody", t(8, 20)).await,
        Err(StoreError::NotFound(_))
    ));
    let listed = s.users_list().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|u| (u.username.as_str(), u.disabled_at))
            .collect::<Vec<_>>(),
        [("lee", Some(t(8, 10)))]
    );

    s.user_enable("lee").await.expect("enable");
    assert!(
        !live("s1").await && !live("a2").await,
        "old credentials stay revoked"
    );
    for (h, k) in [("s2", TokenKind::Session), ("a3", TokenKind::Api)] {
        s.token_insert(token(h, k)).await.expect("token");
    }
    assert!(live("s2").await && live("a3").await, "new ones work");
    assert!(matches!(
        s.user_enable("nobody").await,
        Err(StoreError::NotFound(_))
    ));

    let reset = s
        .user_set_password("lee", "h2", t(8, 30))
        .await
        .expect("password");
    assert_eq!(reset.revoked, 1, "the session, not the API token");
    assert!(!live("s2").await && live("a3").await);
    assert_eq!(
        s.user_by_username("lee")
            .await
            .expect("q")
            .expect("user")
            .password_hash,
        "h2"
    );
    assert!(matches!(
        s.user_set_password("nobody", "h", t(8, 30)).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn tokens_expire_strictly_and_revoke_once(s: &dyn Store) {
    let w = ward(s, "W").await;
    let uid = s
        .user_add(NewUser {
            username: "cara".into(),
            role: Role::Consultant,
            password_hash: "h".into(),
            ward_ids: vec![w],
        })
        .await
        .expect("user");
    let session = NewToken {
        user_id: uid,
        token_hash: "sess".into(),
        kind: TokenKind::Session,
        created_at: t(8, 0),
        expires_at: Some(t(9, 0)),
        sso: None,
    };
    s.token_insert(session.clone()).await.expect("token");
    s.token_insert(NewToken {
        token_hash: "api".into(),
        kind: TokenKind::Api,
        expires_at: None,
        sso: None,
        ..session.clone()
    })
    .await
    .expect("token");
    assert!(matches!(
        s.token_insert(session).await,
        Err(StoreError::Conflict(_))
    ));

    let who = s
        .token_user("sess", t(8, 59), DAY)
        .await
        .expect("lookup")
        .expect("live token");
    assert_eq!(
        who,
        AuthUser {
            id: uid,
            username: "cara".into(),
            role: Role::Consultant,
            ward_ids: vec![w]
        }
    );
    assert!(
        s.token_user("sess", t(9, 0), DAY)
            .await
            .expect("lookup")
            .is_none(),
        "expiry is exclusive"
    );
    assert!(
        s.token_user("api", t(23, 0), DAY)
            .await
            .expect("lookup")
            .is_some(),
        "no expiry means none"
    );
    assert!(
        s.token_user("nope", t(8, 0), DAY)
            .await
            .expect("lookup")
            .is_none()
    );

    assert!(s.token_revoke("api", t(10, 0)).await.expect("revoke"));
    assert!(
        s.token_user("api", t(10, 1), DAY)
            .await
            .expect("lookup")
            .is_none()
    );
    assert!(
        !s.token_revoke("api", t(10, 2)).await.expect("revoke"),
        "already revoked"
    );
    assert!(!s.token_revoke("nope", t(10, 2)).await.expect("revoke"));
}

async fn idle_sessions_expire_and_api_tokens_do_not(s: &dyn Store) {
    let w = ward(s, "W").await;
    let uid = s
        .user_add(NewUser {
            username: "nina".into(),
            role: Role::Nurse,
            password_hash: "h".into(),
            ward_ids: vec![w],
        })
        .await
        .expect("user");
    let session = NewToken {
        user_id: uid,
        token_hash: "sess".into(),
        kind: TokenKind::Session,
        created_at: t(8, 0),
        expires_at: Some(t(18, 0)),
        sso: None,
    };
    s.token_insert(session.clone()).await.expect("token");
    s.token_insert(NewToken {
        token_hash: "api".into(),
        kind: TokenKind::Api,
        ..session
    })
    .await
    .expect("token");
    let idle = Duration::minutes(30);
    // Each use moves the idle window on.
    assert!(
        s.token_user("sess", t(8, 20), idle)
            .await
            .expect("lookup")
            .is_some()
    );
    assert!(
        s.token_user("sess", t(8, 50), idle)
            .await
            .expect("lookup")
            .is_some(),
        "exactly the idle limit is still live"
    );
    assert!(
        s.token_user("sess", t(9, 15), idle)
            .await
            .expect("lookup")
            .is_some()
    );
    assert!(
        s.token_user("sess", t(9, 46), idle)
            .await
            .expect("lookup")
            .is_none(),
        "31 minutes idle"
    );
    assert!(
        s.token_user("api", t(17, 0), idle)
            .await
            .expect("lookup")
            .is_some(),
        "API tokens have no idle limit"
    );
}

// --- patients and episodes -------------------------------------------------

/// One open admission per NHS number (hazard TS-22), on any ward; the
/// same person can be admitted again once discharged: on another ward as a
/// new record, on the same ward on their earlier record (readmitted, their
/// readings theirs again, the name as now given). Admissions racing each
/// other (each its own transaction) let exactly one through.
async fn an_nhs_number_is_admitted_once_at_a_time(s: &dyn Store) {
    let w = ward(s, "W").await;
    let other_ward = ward(s, "Other").await;
    let ann = admit(s, w, "Ann").await;
    let again = NewPatient {
        ward_id: other_ward,
        name: "Ann again".into(),
        ..new_patient(other_ward, "Ann")
    };
    match s.patient_admit(again.clone()).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains(&format!("patient {ann}")), "{m}")
        }
        other => panic!("a second open admission: {other:?}"),
    }
    // Another person is not held up.
    admit(s, w, "Bob").await;
    s.patient_discharge(ann, "admin", t(9, 0))
        .await
        .expect("discharge");
    let elsewhere = s
        .patient_admit(again.clone())
        .await
        .expect("admitted on another ward");
    assert!(
        elsewhere.id != ann && !elsewhere.readmitted,
        "another ward: a new record ({elsewhere:?})"
    );
    s.patient_discharge(elsewhere.id, "admin", t(9, 30))
        .await
        .expect("discharge");
    let home = s
        .patient_admit(NewPatient {
            name: "Ann Smith".into(),
            pathway: "general".into(),
            admitted_at: t(10, 0),
            ..new_patient(w, "Ann")
        })
        .await
        .expect("admitted again");
    assert_eq!(
        home,
        Admission {
            id: ann,
            readmitted: true
        }
    );
    let d = s.patient_get(ann).await.expect("get").expect("patient");
    let ep = d.episode.expect("episode");
    assert_eq!(
        (
            d.name.as_str(),
            ep.pathway.as_str(),
            ep.admitted_at,
            ep.discharged_at
        ),
        ("Ann Smith", "general", t(10, 0), None)
    );
    assert_eq!(s.active_patients().await.expect("active").len(), 2);
    let settings = s.episode_settings(ann).await.expect("settings");
    assert_eq!(
        settings.map(|e| e.earlier_stay_ended),
        Some(Some(t(9, 0))),
        "scoring compares with what came after the earlier stay"
    );
    s.patient_discharge(ann, "admin", t(10, 30))
        .await
        .expect("discharge");

    // Open the connections first (PostgreSQL), so that the admissions
    // overlap rather than wait, one by one, for a connection each.
    futures::future::join_all((0..8).map(|_| s.stats())).await;
    let racing = futures::future::join_all((0..8).map(|_| s.patient_admit(again.clone()))).await;
    let (ok, conflict): (Vec<_>, Vec<_>) = racing.iter().partition(|r| r.is_ok());
    assert_eq!(
        (ok.len(), conflict.len()),
        (1, 7),
        "one admission of eight at once: {racing:?}"
    );
    assert!(
        matches!(ok[0], Ok(a) if a.id == elsewhere.id && a.readmitted),
        "{racing:?}"
    );
    assert!(
        conflict
            .iter()
            .all(|r| matches!(r, Err(StoreError::Conflict(_)))),
        "{racing:?}"
    );
}

async fn admit_opens_one_episode_and_discharge_closes_it(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = s
        .patient_admit(NewPatient {
            spo2_scale: 2,
            spo2_scale_set_by: Some("dr_a".into()),
            ..new_patient(w, "Ann")
        })
        .await
        .expect("admit")
        .id;
    let d = s.patient_get(p).await.expect("get").expect("patient");
    assert_eq!(
        (d.id, d.ward_id, d.name.as_str(), d.nhs_number.as_str()),
        (
            p,
            w,
            "Ann",
            vigil_store::nhs::test_range_for("Ann").as_str()
        )
    );
    let ep = d.episode.expect("episode");
    assert_eq!(
        (
            ep.pathway.as_str(),
            ep.spo2_scale,
            ep.admitted_at,
            ep.discharged_at
        ),
        ("copd", 2, t(7, 0), None)
    );
    assert_eq!(
        (ep.spo2_scale_set_by.as_deref(), ep.spo2_scale_set_at),
        (Some("dr_a"), Some(t(7, 0)))
    );
    assert!(d.devices.is_empty());
    assert_eq!(s.patients_list(&[w]).await.expect("list").len(), 1);
    assert_eq!(s.stats().await.expect("stats").patients, 1);

    let done = s
        .patient_discharge(p, "admin", t(12, 0))
        .await
        .expect("discharge");
    assert_eq!(done.discharged_at, t(12, 0));
    assert!(done.resolved.is_empty(), "no alerts to resolve");
    assert!(
        matches!(
            s.patient_discharge(p, "admin", t(12, 5)).await,
            Err(StoreError::NotFound(_))
        ),
        "no open episode left"
    );
    let ep = s
        .patient_get(p)
        .await
        .expect("get")
        .expect("patient")
        .episode
        .expect("episode");
    assert_eq!(ep.discharged_at, Some(t(12, 0)));
    assert!(s.patients_list(&[w]).await.expect("list").is_empty());
    assert!(s.episode_settings(p).await.expect("settings").is_none());
    assert_eq!(s.stats().await.expect("stats").patients, 0);

    assert!(s.patient_get(999_999).await.expect("get").is_none());
    assert!(matches!(
        s.patient_discharge(999_999, "admin", t(12, 0)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        s.patient_admit(new_patient(999_999, "Nowhere"))
            .await
            .is_err(),
        "unknown ward"
    );
}

async fn admit_with_a_bad_scale_writes_nothing(s: &dyn Store) {
    let w = ward(s, "W").await;
    assert!(
        s.patient_admit(NewPatient {
            spo2_scale: 3,
            ..new_patient(w, "Bad")
        })
        .await
        .is_err()
    );
    // The patient row went with the refused episode.
    let p = admit(s, w, "Good").await;
    let listed: Vec<_> = s
        .patients_list(&[w])
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(listed, ["Good"]);
    for id in 1..p {
        assert!(
            s.patient_get(id).await.expect("get").is_none(),
            "no patient row without its episode"
        );
    }
}

// --- devices -----------------------------------------------------------------

async fn devices_provision_assign_route_and_revoke(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    s.device_provision(device("ox-1", "oximeter", None))
        .await
        .expect("provision");
    assert_eq!(
        s.device_route("ox-1").await.expect("route"),
        None,
        "unassigned"
    );
    let c = s
        .device_credentials("mqtt-ox-1")
        .await
        .expect("creds")
        .expect("device");
    assert_eq!(
        (c.device_id.as_str(), c.secret_hash.as_str(), c.revoked),
        ("ox-1", "hash-ox-1", false)
    );
    assert!(
        s.device_credentials("mqtt-none")
            .await
            .expect("creds")
            .is_none()
    );

    assert!(matches!(
        s.device_provision(device("ox-1", "oximeter", None)).await,
        Err(StoreError::Conflict(_))
    ));
    let same_user = NewDevice {
        mqtt_username: "mqtt-ox-1".into(),
        ..device("ox-2", "oximeter", None)
    };
    assert!(matches!(
        s.device_provision(same_user).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.device_provision(device("tv-1", "television", None))
            .await
            .is_err(),
        "unknown kind"
    );

    s.device_assign("ox-1", p).await.expect("assign");
    assert_eq!(
        s.device_route("ox-1").await.expect("route"),
        Some(DeviceRoute {
            patient_id: p,
            ward_id: w
        })
    );
    let devs = s
        .patient_get(p)
        .await
        .expect("get")
        .expect("patient")
        .devices;
    assert_eq!(
        devs.iter()
            .map(|d| (d.id.as_str(), d.kind.as_str()))
            .collect::<Vec<_>>(),
        [("ox-1", "oximeter")]
    );
    assert!(matches!(
        s.device_assign("nope", p).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.device_assign("ox-1", 999_999).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.stats().await.expect("stats").devices, 1);

    assert_eq!(
        s.device_revoke("ox-1", t(9, 0)).await.expect("revoke"),
        t(9, 0)
    );
    assert!(matches!(
        s.device_revoke("ox-1", t(9, 1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.device_route("ox-1").await.expect("route"),
        None,
        "revoked devices route nowhere"
    );
    assert!(
        s.device_credentials("mqtt-ox-1")
            .await
            .expect("creds")
            .expect("device")
            .revoked
    );
    assert!(matches!(
        s.device_assign("ox-1", p).await,
        Err(StoreError::NotFound(_))
    ));
    let devs = s
        .patient_get(p)
        .await
        .expect("get")
        .expect("patient")
        .devices;
    assert_eq!(devs[0].revoked_at, Some(t(9, 0)));
    assert_eq!(s.stats().await.expect("stats").devices, 0);
}

async fn mqtt_accounts_are_the_unrevoked_devices_with_their_mosquitto_hash(s: &dyn Store) {
    s.device_provision(device("ox-2", "oximeter", None))
        .await
        .expect("provision");
    s.device_provision(device("ox-1", "oximeter", None))
        .await
        .expect("provision");
    // As if provisioned before migration 0006 recorded the hash.
    let old = NewDevice {
        mosquitto_hash: None,
        ..device("hub-1", "hub", None)
    };
    s.device_provision(old).await.expect("provision");
    s.device_provision(device("ox-3", "oximeter", None))
        .await
        .expect("provision");
    s.device_revoke("ox-3", t(9, 0)).await.expect("revoke");
    let accounts: Vec<(String, String, Option<String>)> = s
        .mqtt_accounts()
        .await
        .expect("accounts")
        .into_iter()
        .map(|a| (a.device_id, a.mqtt_username, a.mosquitto_hash))
        .collect();
    assert_eq!(
        accounts,
        [
            ("hub-1".to_string(), "mqtt-hub-1".to_string(), None),
            (
                "ox-1".into(),
                "mqtt-ox-1".into(),
                Some("$7$1000$salt-ox-1$hash-ox-1".into())
            ),
            (
                "ox-2".into(),
                "mqtt-ox-2".into(),
                Some("$7$1000$salt-ox-2$hash-ox-2".into())
            ),
        ],
        "by id, revoked left out"
    );
}

async fn revoked_devices_are_listed_since_a_time(s: &dyn Store) {
    for id in ["ox-1", "ox-2", "ox-3"] {
        s.device_provision(device(id, "oximeter", None))
            .await
            .expect("provision");
    }
    assert!(
        s.devices_revoked_since(t(0, 0))
            .await
            .expect("revoked")
            .is_empty()
    );
    s.device_revoke("ox-2", t(9, 30)).await.expect("revoke");
    s.device_revoke("ox-1", t(9, 0)).await.expect("revoke");
    assert_eq!(
        s.devices_revoked_since(t(9, 0)).await.expect("revoked"),
        ["ox-1", "ox-2"],
        "inclusive, oldest first"
    );
    assert_eq!(
        s.devices_revoked_since(t(9, 1)).await.expect("revoked"),
        ["ox-2"]
    );
    assert!(
        s.devices_revoked_since(t(9, 31))
            .await
            .expect("revoked")
            .is_empty()
    );
}

/// A returned kit given to the next patient: only a device that is no
/// one's (unassigned, unrevoked) is claimed, only for an open episode, and
/// of claims racing for one device exactly one wins.
async fn a_device_is_claimed_only_while_it_is_no_ones(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    s.device_provision(device("hub-1", "hub", Some(ann)))
        .await
        .expect("provision");
    let bob = admit(s, w, "Bob").await;
    assert!(
        matches!(s.device_claim("hub-1", bob).await, Err(StoreError::Conflict(m)) if m.contains("assigned")),
        "Ann's hub stays Ann's"
    );
    assert!(matches!(
        s.device_claim("no-such", bob).await,
        Err(StoreError::NotFound(_))
    ));
    s.patient_discharge(ann, "admin", t(9, 0))
        .await
        .expect("discharge");
    assert!(
        matches!(s.device_claim("hub-1", ann).await, Err(StoreError::NotFound(m)) if m.contains("open episode")),
        "not for a discharged patient"
    );
    s.device_claim("hub-1", bob).await.expect("claim");
    assert_eq!(
        s.device_route("hub-1").await.expect("route"),
        Some(DeviceRoute {
            patient_id: bob,
            ward_id: w
        })
    );

    // Racing claims of one free device for eight patients: one wins.
    s.device_provision(device("hub-2", "hub", None))
        .await
        .expect("provision");
    let mut patients = Vec::new();
    for i in 0..8 {
        patients.push(admit(s, w, &format!("Racer {i}")).await);
    }
    // The pool's connections opened first, so that the claims overlap.
    futures::future::join_all((0..8).map(|_| s.stats())).await;
    let results =
        futures::future::join_all(patients.iter().map(|p| s.device_claim("hub-2", *p))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_)))),
        "{results:?}"
    );
    let winner = patients[results.iter().position(Result::is_ok).expect("a winner")];
    assert_eq!(
        s.device_route("hub-2")
            .await
            .expect("route")
            .map(|r| r.patient_id),
        Some(winner)
    );

    s.device_revoke("hub-2", t(9, 5)).await.expect("revoke");
    s.patient_discharge(winner, "admin", t(9, 6))
        .await
        .expect("discharge");
    assert!(
        matches!(s.device_claim("hub-2", bob).await, Err(StoreError::Conflict(m)) if m.contains("revoked")),
        "a revoked device is nobody's to claim"
    );
}

async fn discharge_unassigns_devices(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    s.device_provision(device("bp-1", "bp-cuff", Some(p)))
        .await
        .expect("provision");
    assert_eq!(
        s.device_route("bp-1").await.expect("route"),
        Some(DeviceRoute {
            patient_id: p,
            ward_id: w
        })
    );
    let q = admit(s, w, "Bob").await;
    for (id, patient) in [("ox-2", Some(q)), ("ox-1", Some(q)), ("spare", None)] {
        s.device_provision(device(id, "oximeter", patient))
            .await
            .expect("provision");
    }
    assert_eq!(
        s.assigned_devices().await.expect("assigned"),
        vec![
            (p, "bp-1".to_string()),
            (q, "ox-1".to_string()),
            (q, "ox-2".to_string())
        ]
    );
    s.patient_discharge(p, "admin", t(10, 0))
        .await
        .expect("discharge");
    assert_eq!(s.device_route("bp-1").await.expect("route"), None);
    assert_eq!(
        s.assigned_devices().await.expect("assigned").len(),
        2,
        "Ann's cuff is no one's"
    );
    s.device_revoke("ox-2", t(10, 5)).await.expect("revoke");
    assert_eq!(
        s.assigned_devices().await.expect("assigned"),
        vec![(q, "ox-1".to_string())],
        "a revoked device is not watched, assigned or not"
    );
    assert!(
        s.patient_get(p)
            .await
            .expect("get")
            .expect("patient")
            .devices
            .is_empty()
    );
    assert!(
        matches!(
            s.device_assign("bp-1", p).await,
            Err(StoreError::NotFound(_))
        ),
        "no open episode"
    );
}

async fn device_routes_answer_a_batch_like_device_route_does(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    s.device_provision(device("ox-1", "oximeter", Some(ann)))
        .await
        .expect("provision");
    s.device_provision(device("bp-1", "bp-cuff", Some(bob)))
        .await
        .expect("provision");
    s.device_provision(device("spare", "bp-cuff", None))
        .await
        .expect("provision");
    s.device_provision(device("gone", "bp-cuff", Some(ann)))
        .await
        .expect("provision");
    s.device_revoke("gone", t(9, 0)).await.expect("revoke");
    assert!(s.device_routes(&[]).await.expect("routes").is_empty());
    let ids = [
        "ox-1",
        "bp-1",
        "spare",
        "gone",
        "unknown",
        "ox-1",
        "it's \"quoted\"",
    ];
    let routes = s.device_routes(&ids).await.expect("routes");
    assert_eq!(
        routes.len(),
        2,
        "only assigned, unrevoked devices of admitted patients: {routes:?}"
    );
    for id in ids {
        assert_eq!(
            routes.get(id).copied(),
            s.device_route(id).await.expect("route"),
            "{id}"
        );
    }
    s.patient_discharge(bob, "admin", t(10, 0))
        .await
        .expect("discharge");
    assert_eq!(
        s.device_routes(&["bp-1", "ox-1"])
            .await
            .expect("routes")
            .keys()
            .collect::<Vec<_>>(),
        ["ox-1"]
    );
}

async fn route_generation_moves_with_every_route_change_and_only_then(s: &dyn Store) {
    let gen_ = || async { s.route_generation().await.expect("generation") };
    let mut last = gen_().await;
    // Asserts the generation moved (or not) since the last check.
    let mut check = |now: i64, moved: bool, what: &str| {
        assert_eq!(now != last, moved, "{what}: {last} -> {now}");
        last = now;
    };
    let w = ward(s, "W").await;
    check(gen_().await, false, "a ward added");
    let ann = admit(s, w, "Ann").await;
    check(gen_().await, true, "Ann admitted");
    let bob = admit(s, w, "Bob").await;
    check(gen_().await, true, "Bob admitted");
    s.device_provision(device("ox-1", "oximeter", Some(ann)))
        .await
        .expect("provision");
    check(gen_().await, true, "a device provisioned");
    s.device_provision(device("spare", "bp-cuff", None))
        .await
        .expect("provision");
    check(gen_().await, true, "an unassigned device provisioned");
    s.store_obs_batch(&[msg("ox-1", 1, ann, t(8, 0), vec![num("spo2", 95.0)])])
        .await
        .expect("batch");
    check(gen_().await, false, "a reading stored");
    s.episode_update(
        ann,
        EpisodeUpdate {
            spo2_scale: Some(2),
            ..Default::default()
        },
        "dr-who",
        t(9, 0),
    )
    .await
    .expect("update");
    check(gen_().await, false, "an episode's scale changed");
    s.device_assign("ox-1", bob).await.expect("assign");
    check(gen_().await, true, "a device reassigned");
    s.patient_discharge(bob, "admin", t(10, 0))
        .await
        .expect("discharge");
    check(gen_().await, true, "a patient discharged");
    s.device_assign("spare", ann).await.expect("assign");
    check(gen_().await, true, "a spare device assigned");
    s.device_revoke("spare", t(11, 0)).await.expect("revoke");
    check(gen_().await, true, "a device revoked");
}

async fn a_routed_batch_stores_only_under_the_generation_it_was_routed_by(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    s.device_provision(device("ox-1", "oximeter", Some(ann)))
        .await
        .expect("provision");
    let routed_at = s.route_generation().await.expect("generation");
    let first = msg("ox-1", 1, ann, t(8, 0), vec![num("spo2", 95.0)]);
    let (obs, ecg) = s
        .store_routed_batch(routed_at, std::slice::from_ref(&first), &[])
        .await
        .expect("batch")
        .expect("stored under the current generation");
    assert_eq!((obs.len(), ecg.len()), (1, 0));
    assert!(matches!(obs[0], BatchOutcome::Stored { .. }));

    s.device_assign("ox-1", bob)
        .await
        .expect("move ox-1 to Bob");
    let late = msg("ox-1", 2, ann, t(8, 1), vec![num("spo2", 94.0)]);
    assert!(
        s.store_routed_batch(routed_at, &[late], &[ecg_chunk("e1", 1, ann, 0)])
            .await
            .expect("batch")
            .is_none(),
        "routed by a generation that has moved: refused"
    );
    assert_eq!(
        s.stats().await.expect("stats").obs_messages,
        1,
        "nothing of the refused batch stored"
    );
    assert!(
        s.ecg_range(ann, 0, i64::MAX)
            .await
            .expect("range")
            .0
            .is_empty()
    );

    let now = s.route_generation().await.expect("generation");
    let moved = msg("ox-1", 2, bob, t(8, 1), vec![num("spo2", 94.0)]);
    assert!(
        s.store_routed_batch(now, &[moved], &[])
            .await
            .expect("batch")
            .is_some()
    );
    assert_eq!(s.stats().await.expect("stats").obs_messages, 2);
}

/// `scores_earlier`, what the ward list compares a score with: for each
/// patient the newest score at or before `then`, else the first; none
/// before the patient's `since`; patients without one left out.
async fn the_earlier_score_is_a_day_old_else_the_stays_first(s: &dyn Store) {
    let w = ward(s, "W").await;
    let [day_old, young, none, again] = [
        admit(s, w, "Ann").await,
        admit(s, w, "Bob").await,
        admit(s, w, "Cat").await,
        admit(s, w, "Dan").await,
    ];
    let score = |patient_id: i64, at: DateTime<Utc>, total: Option<i64>, partial: bool| NewScore {
        patient_id,
        scored_at: at,
        computed_at: at,
        total,
        risk: total.map(|_| "low".into()),
        partial,
        detail: serde_json::json!({"total": total}),
        obs_ids: vec![],
    };
    let then = t(12, 0);
    s.score_insert_many(&[
        score(day_old, t(8, 0), Some(1), false),
        score(day_old, t(12, 0), Some(2), true), // at `then`: the newest by then
        score(day_old, t(12, 1), Some(3), false),
        score(young, t(13, 0), None, false), // NEWS2 not applying
        score(young, t(14, 0), Some(5), false),
        // Dan's earlier stay ended at 11:00: his scores of before are not this stay's.
        score(again, t(9, 0), Some(7), false),
        score(again, t(11, 30), Some(4), true),
        score(again, t(15, 0), Some(6), false),
    ])
    .await
    .expect("insert");
    let mut got = s
        .scores_earlier(
            &[
                (day_old, None),
                (young, None),
                (none, None),
                (again, Some(t(11, 0))),
            ],
            then,
        )
        .await
        .expect("earlier");
    got.sort_by_key(|(id, _)| *id);
    let e = |total: Option<i64>, partial: bool, at: DateTime<Utc>| EarlierScore {
        total,
        risk: total.map(|_| "low".into()),
        partial,
        scored_at: at,
    };
    assert_eq!(
        got,
        [
            (day_old, e(Some(2), true, t(12, 0))),
            (young, e(None, false, t(13, 0))),
            (again, e(Some(4), true, t(11, 30))),
        ]
    );
    assert_eq!(s.scores_earlier(&[], then).await.expect("none asked"), []);
    // Since a stay that ends after `then`: the first of after it.
    assert_eq!(
        s.scores_earlier(&[(again, Some(t(14, 0)))], then)
            .await
            .expect("earlier"),
        [(again, e(Some(6), false, t(15, 0)))]
    );
}

async fn score_insert_many_is_all_or_nothing(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let score = |patient_id: i64, at: DateTime<Utc>, total: i64| NewScore {
        patient_id,
        scored_at: at,
        computed_at: t(12, 0),
        total: Some(total),
        risk: Some("low".into()),
        partial: false,
        detail: serde_json::json!({"total": total}),
        obs_ids: vec![],
    };
    s.score_insert_many(&[]).await.expect("nothing to insert");
    s.score_insert_many(&[score(p, t(8, 0), 1), score(p, t(9, 0), 2)])
        .await
        .expect("insert");
    let totals = |rows: Vec<ScoreRow>| rows.iter().map(|r| r.total).collect::<Vec<_>>();
    assert_eq!(
        totals(s.scores(p, None, None).await.expect("scores")),
        [Some(1), Some(2)]
    );
    // A row for a patient who does not exist fails the whole batch.
    assert!(
        s.score_insert_many(&[score(p, t(10, 0), 3), score(p + 999, t(10, 0), 4)])
            .await
            .is_err()
    );
    assert_eq!(
        totals(s.scores(p, None, None).await.expect("scores")),
        [Some(1), Some(2)],
        "nothing of a failed batch is kept"
    );

    // More rows than one statement carries, every field kept.
    let q = admit(s, w, "Bob").await;
    let many: Vec<NewScore> = (0..1_500i64)
        .map(|i| NewScore {
            total: (i % 3 != 0).then_some(i % 20),
            risk: (i % 2 == 0).then(|| "medium".to_string()),
            partial: i % 5 == 0,
            detail: serde_json::json!({"i": i, "why": ["a", "b"]}),
            obs_ids: vec![i, i + 1],
            ..score(q, t(8, 0) + Duration::seconds(i), 0)
        })
        .collect();
    s.score_insert_many(&many).await.expect("insert many");
    let back = s.scores(q, None, None).await.expect("scores");
    assert_eq!(back.len(), many.len());
    for (r, want) in back.iter().zip(&many) {
        assert_eq!(
            (
                r.scored_at,
                r.total,
                r.risk.as_ref(),
                r.partial,
                &r.detail,
                &r.obs_ids
            ),
            (
                want.scored_at,
                want.total,
                want.risk.as_ref(),
                want.partial,
                &want.detail,
                &want.obs_ids
            )
        );
    }
}

/// An admin looks a device up (Ann's), and asks to revoke it; meanwhile it
/// was moved to Bob. Revoking it then would stop Bob's monitoring: it is
/// refused, and Bob's oximeter keeps working.
async fn a_device_is_revoked_only_while_it_is_whose_it_was_seen_to_be(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    s.device_provision(device("ox-1", "oximeter", Some(ann)))
        .await
        .expect("provision");
    s.device_provision(device("ox-free", "oximeter", None))
        .await
        .expect("provision");
    // Seen as Ann's; moved to Bob before the revocation.
    s.device_assign("ox-1", bob).await.expect("moved");
    assert!(
        matches!(
            s.device_revoke_held("ox-1", Some(ann), t(9, 0)).await,
            Err(StoreError::Conflict(m)) if m.contains(&format!("patient {bob}'s now"))
        ),
        "not revoked from under Bob"
    );
    assert!(
        matches!(
            s.device_revoke_held("ox-1", None, t(9, 0)).await,
            Err(StoreError::Conflict(m)) if m.contains("not no one's")
        ),
        "seen as no one's, it is Bob's"
    );
    assert_eq!(
        s.device_route("ox-1")
            .await
            .expect("route")
            .map(|r| r.patient_id),
        Some(bob),
        "Bob's and working"
    );
    // As seen: revoked, once.
    assert_eq!(
        s.device_revoke_held("ox-1", Some(bob), t(9, 1))
            .await
            .expect("revoked"),
        t(9, 1)
    );
    assert_eq!(s.device_route("ox-1").await.expect("route"), None);
    assert!(matches!(
        s.device_revoke_held("ox-1", Some(bob), t(9, 2)).await,
        Err(StoreError::NotFound(_))
    ));
    // A free one, seen free; an unknown one.
    s.device_revoke_held("ox-free", None, t(9, 3))
        .await
        .expect("a free one revoked");
    assert!(matches!(
        s.device_revoke_held("no-such", None, t(9, 3)).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_device_is_returned_only_from_its_patient(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    s.device_provision(device("ox-1", "oximeter", Some(ann)))
        .await
        .expect("provision");
    assert!(
        matches!(s.device_unassign("ox-1", bob).await, Err(StoreError::Conflict(m)) if m.contains("not patient")),
        "Bob cannot return Ann's oximeter"
    );
    assert!(matches!(
        s.device_unassign("no-such", ann).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.device_route("ox-1")
            .await
            .expect("route")
            .map(|r| r.patient_id),
        Some(ann),
        "still Ann's"
    );
    let before = s.route_generation().await.expect("generation");
    s.device_unassign("ox-1", ann).await.expect("return");
    assert_eq!(s.device_route("ox-1").await.expect("route"), None);
    assert_ne!(
        s.route_generation().await.expect("generation"),
        before,
        "a return is a route change"
    );
    assert!(
        s.assigned_devices()
            .await
            .expect("assigned")
            .iter()
            .all(|(_, d)| d != "ox-1")
    );
    assert!(
        matches!(s.device_unassign("ox-1", ann).await, Err(StoreError::Conflict(m)) if m.contains("no one's")),
        "returned once"
    );
    // Free again: Bob can be given it.
    s.device_claim("ox-1", bob).await.expect("claim");
    assert_eq!(
        s.device_route("ox-1")
            .await
            .expect("route")
            .map(|r| r.patient_id),
        Some(bob)
    );
}

async fn devices_are_listed_with_their_patient_ward_and_last_message(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let ann = admit(s, w1, "Ann").await;
    let bob = admit(s, w2, "Bob").await;
    for d in [
        device("ecg-1", "ecg-patch", Some(ann)),
        device("ox-1", "oximeter", Some(ann)),
        device("ox-2", "oximeter", Some(bob)),
        device("ox-3", "oximeter", None),
        device("bp-9", "bp-cuff", None),
    ] {
        s.device_provision(d).await.expect("provision");
    }
    let ids = |l: Vec<DeviceListed>| l.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.devices_list(DeviceQuery::All).await.expect("all")),
        ["bp-9", "ecg-1", "ox-1", "ox-2", "ox-3"]
    );
    assert_eq!(
        ids(s.devices_list(DeviceQuery::Unassigned).await.expect("free")),
        ["bp-9", "ox-3"]
    );
    assert_eq!(
        ids(s.devices_list(DeviceQuery::Ward(w1)).await.expect("w1")),
        ["ecg-1", "ox-1"]
    );
    assert_eq!(
        ids(s.devices_list(DeviceQuery::Ward(w2)).await.expect("w2")),
        ["ox-2"]
    );
    assert!(
        s.devices_list(DeviceQuery::One("nope"))
            .await
            .expect("none")
            .is_empty()
    );

    // Never sent anything: no last message, no status.
    let one = |l: Vec<DeviceListed>| l.into_iter().next().expect("one device");
    let ox1 = one(s.devices_list(DeviceQuery::One("ox-1")).await.expect("one"));
    assert_eq!(
        (ox1.kind.as_str(), ox1.patient_id, ox1.ward_id),
        ("oximeter", Some(ann), Some(w1))
    );
    assert_eq!(ox1.provisioned_at, t(6, 0));
    assert_eq!(
        (ox1.last_message_at, ox1.status, ox1.revoked_at),
        (None, None, None)
    );

    // The newest message by the device's counter, whatever order it came in.
    let mut late = msg("ox-1", 7, ann, t(9, 0), vec![num("spo2", 95.0)]);
    late.received_at = t(9, 30);
    let mut early = msg("ox-1", 3, ann, t(8, 0), vec![num("spo2", 96.0)]);
    early.received_at = t(9, 45);
    s.store_obs_batch(&[late]).await.expect("store");
    s.store_obs_batch(&[early]).await.expect("store");
    let mut chunk = ecg_chunk("ecg-1", 4, ann, 10_000);
    chunk.received_at = t(10, 5);
    s.store_ecg_batch(&[chunk]).await.expect("ecg");
    let report = DeviceStatusReport {
        online: false,
        battery_pct: Some(12),
        signal: None,
        fw: Some("2.0".into()),
        reported_at: t(10, 0),
    };
    s.device_status_record("ox-1", &report)
        .await
        .expect("status");
    let ox1 = one(s.devices_list(DeviceQuery::One("ox-1")).await.expect("one"));
    assert_eq!(ox1.last_message_at, Some(t(9, 30)), "seq 7's, not seq 3's");
    assert_eq!(ox1.status, Some(report));
    let ecg = one(s
        .devices_list(DeviceQuery::One("ecg-1"))
        .await
        .expect("one"));
    assert_eq!(ecg.last_message_at, Some(t(10, 5)), "an ECG chunk counts");

    // Revoked devices are still listed, with when; a returned one is no one's.
    s.device_revoke("ox-2", t(11, 0)).await.expect("revoke");
    let ox2 = one(s.devices_list(DeviceQuery::One("ox-2")).await.expect("one"));
    assert_eq!(
        (ox2.revoked_at, ox2.patient_id),
        (Some(t(11, 0)), Some(bob))
    );
    s.device_unassign("ox-1", ann).await.expect("return");
    assert_eq!(
        ids(s.devices_list(DeviceQuery::Unassigned).await.expect("free")),
        ["bp-9", "ox-1", "ox-3"]
    );
    let ox1 = one(s.devices_list(DeviceQuery::One("ox-1")).await.expect("one"));
    assert_eq!((ox1.patient_id, ox1.ward_id), (None, None));
    assert_eq!(ox1.last_message_at, Some(t(9, 30)), "its history stays");
}

async fn device_status_keeps_the_last_report_per_device(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    s.device_provision(device("hub-1", "hub", Some(p)))
        .await
        .expect("provision");
    s.device_provision(device("ox-1", "oximeter", Some(p)))
        .await
        .expect("provision");
    let statuses = |d: PatientDetail| {
        d.devices
            .into_iter()
            .map(|d| (d.id, d.status))
            .collect::<Vec<_>>()
    };
    let detail = s.patient_get(p).await.expect("get").expect("patient");
    assert_eq!(
        statuses(detail),
        vec![("hub-1".into(), None), ("ox-1".into(), None)],
        "never reported"
    );
    let first = DeviceStatusReport {
        online: true,
        battery_pct: Some(71),
        signal: Some("ok".into()),
        fw: Some("1.2.3".into()),
        reported_at: t(9, 0),
    };
    s.device_status_record("hub-1", &first)
        .await
        .expect("record");
    // A later report replaces the whole row: what it leaves out is unknown.
    let will = DeviceStatusReport {
        online: false,
        battery_pct: None,
        signal: None,
        fw: None,
        reported_at: t(9, 30),
    };
    s.device_status_record("ox-1", &first)
        .await
        .expect("record");
    s.device_status_record("ox-1", &will).await.expect("record");
    let detail = s.patient_get(p).await.expect("get").expect("patient");
    assert_eq!(
        statuses(detail),
        vec![("hub-1".into(), Some(first)), ("ox-1".into(), Some(will))]
    );
    assert!(
        matches!(
            s.device_status_record(
                "nope",
                &DeviceStatusReport {
                    online: true,
                    battery_pct: None,
                    signal: None,
                    fw: None,
                    reported_at: t(9, 0),
                }
            )
            .await,
            Err(StoreError::NotFound(_))
        ),
        "unknown device"
    );
}

async fn device_statuses_recorded_together_keep_the_last_and_skip_unknown_devices(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    for (id, kind) in [("hub-1", "hub"), ("ox-1", "oximeter")] {
        s.device_provision(device(id, kind, Some(p)))
            .await
            .expect("provision");
    }
    let report = |battery: u8, at| DeviceStatusReport {
        online: true,
        battery_pct: Some(battery),
        signal: None,
        fw: None,
        reported_at: at,
    };
    let n = s
        .device_status_record_many(&[
            ("ox-1".into(), report(80, t(9, 0))),
            ("nope".into(), report(50, t(9, 0))),
            ("hub-1".into(), report(70, t(9, 0))),
            ("ox-1".into(), report(79, t(9, 1))),
        ])
        .await
        .expect("record");
    assert_eq!(n, 3, "the unknown device is skipped, not an error");
    let detail = s.patient_get(p).await.expect("get").expect("patient");
    let got: Vec<_> = detail
        .devices
        .into_iter()
        .map(|d| (d.id, d.status.and_then(|s| s.battery_pct)))
        .collect();
    assert_eq!(
        got,
        vec![("hub-1".into(), Some(70)), ("ox-1".into(), Some(79))],
        "the later report of a device wins"
    );
    assert_eq!(s.device_status_record_many(&[]).await.expect("nothing"), 0);
}

// --- ingest ------------------------------------------------------------------

async fn large_batches_give_each_observation_its_own_id(s: &dyn Store) {
    // More messages and observations than one statement carries, with
    // repeats within the batch and a message that sends one code twice.
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    let mut batch = Vec::new();
    for i in 0..1_300u32 {
        let p = if i % 2 == 0 { ann } else { bob };
        let at = t(8, 0) + Duration::seconds(i64::from(i));
        batch.push(msg(
            "d",
            i,
            p,
            at,
            vec![
                num("spo2", f64::from(i) / 10.0),
                num("pulse", f64::from(i) + 0.25),
            ],
        ));
        if i % 97 == 0 {
            batch.push(msg("d", i, p, at, vec![num("spo2", -1.0)]));
        }
    }
    batch.push(msg(
        "e",
        1,
        ann,
        t(9, 0),
        vec![
            num("resp_rate", 12.0),
            num("resp_rate", 13.0),
            num("temp", 37.1),
        ],
    ));
    let out = s.store_obs_batch(&batch).await.expect("batch");
    assert_eq!(out.len(), batch.len());
    let mut rows = obs(
        s,
        ObservationQuery {
            patient_id: ann,
            code: None,
            from: None,
            to: None,
            max_points: None,
        },
    )
    .await;
    rows.extend(
        obs(
            s,
            ObservationQuery {
                patient_id: bob,
                code: None,
                from: None,
                to: None,
                max_points: None,
            },
        )
        .await,
    );
    let by_id: std::collections::HashMap<i64, &ObservationRow> =
        rows.iter().map(|r| (r.id, r)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut stored = 0;
    for (m, o) in batch.iter().zip(&out) {
        match o {
            BatchOutcome::Duplicate => {
                assert_eq!(
                    m.obs[0].value,
                    ObsValue::Number(-1.0),
                    "only the repeats are duplicates"
                );
            }
            BatchOutcome::Stored { observation_ids } => {
                stored += observation_ids.len();
                assert_eq!(observation_ids.len(), m.obs.len());
                for (id, want) in observation_ids.iter().zip(&m.obs) {
                    assert!(seen.insert(*id), "id {id} given twice");
                    let row = by_id[id];
                    assert_eq!(
                        (
                            row.device_id.as_str(),
                            row.seq,
                            row.code.as_str(),
                            &row.value
                        ),
                        (m.device_id.as_str(), m.seq, want.code.as_str(), &want.value)
                    );
                }
            }
        }
    }
    assert_eq!(stored, rows.len(), "every stored observation has its id");
    assert_eq!(stored, 1_300 * 2 + 3);
}

async fn batch_reports_new_and_duplicates_in_input_order(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let out = s
        .store_obs_batch(&[
            msg(
                "d1",
                1,
                p,
                t(8, 1),
                vec![num("spo2", 95.0), num("pulse", 80.0)],
            ),
            msg("d1", 2, p, t(8, 2), vec![num("spo2", 94.0)]),
            msg("d1", 1, p, t(8, 3), vec![num("spo2", 70.0)]),
            msg("d2", 1, p, t(8, 4), vec![num("pulse", 81.0)]),
        ])
        .await
        .expect("batch");
    assert_eq!(out.len(), 4);
    let first = stored_ids(&out[0]);
    assert_eq!(first.len(), 2, "one id per observation");
    assert!(first[0] < first[1], "ids in message order");
    assert_eq!(stored_ids(&out[1]).len(), 1);
    assert_eq!(
        out[2],
        BatchOutcome::Duplicate,
        "duplicate within the batch"
    );
    assert_eq!(stored_ids(&out[3]).len(), 1, "same seq, other device: new");

    let again = s
        .store_obs_batch(&[
            msg("d1", 2, p, t(8, 2), vec![num("spo2", 94.0)]),
            msg("d1", 3, p, t(8, 5), vec![num("spo2", 93.0)]),
        ])
        .await
        .expect("batch");
    assert_eq!(
        again[0],
        BatchOutcome::Duplicate,
        "duplicate across batches"
    );
    assert_eq!(stored_ids(&again[1]).len(), 1);
    assert_eq!(s.store_obs_batch(&[]).await.expect("empty batch"), []);

    let st = s.stats().await.expect("stats");
    assert_eq!((st.obs_messages, st.observations), (4, 5));
    let rows = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    let ids: Vec<i64> = out
        .iter()
        .chain(&again)
        .filter_map(|o| match o {
            BatchOutcome::Stored { observation_ids } => Some(observation_ids.clone()),
            BatchOutcome::Duplicate => None,
        })
        .flatten()
        .collect();
    let mut got: Vec<i64> = rows.iter().map(|r| r.id).collect();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(got, want, "the reported ids are the stored rows");
    let r = rows.iter().find(|r| r.id == first[0]).expect("row");
    assert_eq!(
        (r.device_id.as_str(), r.seq, r.measured_at, r.received_at),
        ("d1", 1, t(8, 1), t(8, 1) + Duration::seconds(2))
    );
    assert_eq!(r.value, ObsValue::Number(95.0));
}

async fn duplicate_never_overwrites_the_stored_reading(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    s.store_obs_batch(&[msg("d1", 7, p, t(8, 0), vec![num("spo2", 95.0)])])
        .await
        .expect("batch");
    let out = s
        .store_obs_batch(&[msg("d1", 7, p, t(8, 30), vec![num("spo2", 81.0)])])
        .await
        .expect("batch");
    assert_eq!(out, [BatchOutcome::Duplicate]);
    let rows = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(values(&rows), [("spo2".to_string(), 95.0)]);
    assert_eq!(rows[0].measured_at, t(8, 0));
}

async fn failed_batch_leaves_nothing_behind(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let good = msg("d1", 1, p, t(8, 1), vec![num("spo2", 95.0)]);
    // The second message names a patient that does not exist: its insert
    // fails after the first message's rows were written in the same transaction.
    let bad = msg("d1", 2, 999_999, t(8, 2), vec![num("spo2", 94.0)]);
    assert!(s.store_obs_batch(&[good.clone(), bad]).await.is_err());
    let st = s.stats().await.expect("stats");
    assert_eq!((st.obs_messages, st.observations), (0, 0), "all or nothing");
    assert!(
        obs(
            s,
            ObservationQuery {
                patient_id: p,
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    // The dedup key went too: a resend of the good message is new, not a duplicate.
    let out = s.store_obs_batch(&[good]).await.expect("batch");
    assert_eq!(stored_ids(&out[0]).len(), 1);
}

async fn uplink_batch_stores_messages_and_chunks_together_or_neither(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let m1 = msg(
        "d1",
        1,
        p,
        t(8, 1),
        vec![num("spo2", 95.0), num("pulse", 70.0)],
    );
    let m2 = msg("d1", 2, p, t(8, 2), vec![num("spo2", 94.0)]);
    // A chunk naming a patient that does not exist fails the whole batch,
    // messages included.
    let refused = s
        .store_uplink_batch(
            &[m1.clone(), m2.clone()],
            &[
                ecg_chunk("e1", 1, p, 10_000),
                ecg_chunk("e1", 2, 999_999, 12_000),
            ],
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let st = s.stats().await.expect("stats");
    assert_eq!(
        (st.obs_messages, st.observations, st.ecg_chunks),
        (0, 0, 0),
        "all or nothing"
    );

    // Both parts, each with its outcomes in input order, like the two
    // batch calls give; a repeat is a duplicate in either part.
    let (obs_out, ecg_out) = s
        .store_uplink_batch(
            &[m1.clone(), m2.clone(), m1.clone()],
            &[ecg_chunk("e1", 1, p, 10_000), ecg_chunk("e1", 1, p, 10_000)],
        )
        .await
        .expect("uplink");
    assert_eq!(
        (stored_ids(&obs_out[0]).len(), stored_ids(&obs_out[1]).len()),
        (2, 1)
    );
    assert_eq!(obs_out[2], BatchOutcome::Duplicate);
    assert!(
        matches!(ecg_out[0], BatchOutcome::Stored { .. }),
        "{ecg_out:?}"
    );
    assert_eq!(ecg_out[1], BatchOutcome::Duplicate);
    // Either part may be empty.
    let (obs_out, ecg_out) = s
        .store_uplink_batch(&[], &[ecg_chunk("e1", 2, p, 12_000)])
        .await
        .expect("ecg only");
    assert!(obs_out.is_empty() && matches!(ecg_out[..], [BatchOutcome::Stored { .. }]));
    let (obs_out, ecg_out) = s.store_uplink_batch(&[m2], &[]).await.expect("obs only");
    assert!(ecg_out.is_empty() && obs_out == [BatchOutcome::Duplicate]);
    let st = s.stats().await.expect("stats");
    assert_eq!((st.obs_messages, st.observations, st.ecg_chunks), (2, 3, 2));
}

async fn concurrent_overlapping_batches_store_each_message_once(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    // Two writers (two instances, or a resend racing the original) store the
    // same messages in opposite orders at the same time.
    for round in 0..10u32 {
        let forward: Vec<_> = (0..20u32)
            .map(|i| {
                msg(
                    &format!("d{}", i % 3),
                    round * 100 + i,
                    p,
                    t(8, 0),
                    vec![num("spo2", 95.0)],
                )
            })
            .collect();
        let backward: Vec<_> = forward.iter().rev().cloned().collect();
        let (a, b) = tokio::join!(s.store_obs_batch(&forward), s.store_obs_batch(&backward));
        let (a, b) = (a.expect("first writer"), b.expect("second writer"));
        for (i, x) in a.iter().enumerate() {
            let y = &b[b.len() - 1 - i];
            let stored = [x, y]
                .iter()
                .filter(|o| matches!(o, BatchOutcome::Stored { .. }))
                .count();
            assert_eq!(
                stored, 1,
                "message {i} of round {round} stored exactly once"
            );
        }
    }
    let st = s.stats().await.expect("stats");
    assert_eq!((st.obs_messages, st.observations), (200, 200));
}

async fn rejected_messages_are_kept_and_counted(s: &dyn Store) {
    s.store_rejected(NewRejected {
        device_id: None,
        seq: None,
        topic: "vigil/v1/dev/unknown/obs".into(),
        reason: "unknown_device".into(),
        detail: "no such device".into(),
        payload: b"{not json".to_vec(),
        received_at: t(8, 0),
    })
    .await
    .expect("reject");
    s.store_rejected(NewRejected {
        device_id: Some("d1".into()),
        seq: Some(u32::MAX),
        topic: "vigil/v1/dev/d1/obs".into(),
        reason: "bad_unit".into(),
        detail: "spo2 in mmHg".into(),
        payload: vec![0, 159, 146, 150, 255],
        received_at: t(8, 1),
    })
    .await
    .expect("reject");
    let st = s.stats().await.expect("stats");
    assert_eq!((st.rejected, st.obs_messages), (2, 0));
}

async fn observation_query_filters_code_and_includes_both_edges(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let other = admit(s, w, "Bob").await;
    let batch: Vec<_> = (0..5u32)
        .map(|i| {
            msg(
                "d1",
                i,
                p,
                t(8, i),
                vec![
                    num("spo2", 90.0 + f64::from(i)),
                    num("pulse", 70.0 + f64::from(i)),
                ],
            )
        })
        .chain([msg("d9", 1, other, t(8, 2), vec![num("spo2", 50.0)])])
        .collect();
    s.store_obs_batch(&batch).await.expect("batch");

    let all = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 10, "only this patient's rows");
    let order: Vec<_> = all
        .iter()
        .map(|r| (r.code.as_str(), r.measured_at))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "ordered by code, then time");

    let spo2 = obs(
        s,
        ObservationQuery {
            patient_id: p,
            code: Some("spo2".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        values(&spo2).iter().map(|v| v.1).collect::<Vec<_>>(),
        [90.0, 91.0, 92.0, 93.0, 94.0]
    );

    let q = ObservationQuery {
        patient_id: p,
        code: Some("pulse".into()),
        from: Some(t(8, 1)),
        to: Some(t(8, 3)),
        max_points: None,
    };
    assert_eq!(
        values(&obs(s, q).await)
            .iter()
            .map(|v| v.1)
            .collect::<Vec<_>>(),
        [71.0, 72.0, 73.0],
        "both edges inclusive"
    );
    let q = ObservationQuery {
        patient_id: p,
        from: Some(t(8, 3)),
        ..Default::default()
    };
    assert_eq!(obs(s, q).await.len(), 4);
    let q = ObservationQuery {
        patient_id: p,
        to: Some(t(8, 0)),
        ..Default::default()
    };
    assert_eq!(obs(s, q).await.len(), 2);
    let q = ObservationQuery {
        patient_id: p,
        from: Some(t(8, 3)),
        to: Some(t(8, 1)),
        ..Default::default()
    };
    assert!(obs(s, q).await.is_empty());
    let q = ObservationQuery {
        patient_id: p,
        code: Some("temp".into()),
        ..Default::default()
    };
    assert!(obs(s, q).await.is_empty());
}

async fn times_are_kept_to_the_millisecond(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let at = t(8, 0) + Duration::nanoseconds(123_456_789);
    s.store_obs_batch(&[msg("d1", 1, p, at, vec![num("spo2", 95.0)])])
        .await
        .expect("batch");
    let rows = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rows[0].measured_at, at.trunc_subsecs(3));
    assert_eq!(rows[0].measured_at, t(8, 0) + Duration::milliseconds(123));
    // A bound at the stored millisecond includes the row.
    let q = ObservationQuery {
        patient_id: p,
        from: Some(at),
        to: Some(at),
        ..Default::default()
    };
    assert_eq!(obs(s, q).await.len(), 1);
}

async fn max_points_keeps_each_codes_extremes(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let start = t(0, 0);
    let batch: Vec<_> = (0..600u32)
        .map(|i| {
            let v = match i {
                217 => 81.0,
                480 => 100.0,
                _ => 96.0,
            };
            let mut o = vec![num("spo2", v)];
            if i % 60 == 0 {
                o.push(num("pulse", 60.0 + f64::from(i / 60)));
            }
            msg("d1", i, p, start + Duration::minutes(i64::from(i)), o)
        })
        .collect();
    s.store_obs_batch(&batch).await.expect("batch");
    let rows = obs(
        s,
        ObservationQuery {
            patient_id: p,
            max_points: Some(40),
            ..Default::default()
        },
    )
    .await;
    let spo2: Vec<_> = rows.iter().filter(|r| r.code == "spo2").collect();
    let pulse: Vec<_> = rows.iter().filter(|r| r.code == "pulse").collect();
    assert!(
        spo2.len() <= 40 && spo2.len() >= 20,
        "spo2 downsampled to {}",
        spo2.len()
    );
    assert!(
        spo2.iter().any(|r| r.value == ObsValue::Number(81.0)),
        "the dip survives"
    );
    assert!(
        spo2.iter().any(|r| r.value == ObsValue::Number(100.0)),
        "the peak survives"
    );
    assert!(
        spo2.windows(2)
            .all(|w| w[0].measured_at <= w[1].measured_at)
    );
    assert_eq!(pulse.len(), 10, "a short series is untouched by a busy one");
    assert_eq!(
        rows.iter().position(|r| r.code == "spo2"),
        Some(10),
        "codes stay in order"
    );
}

/// A series longer than one run of the reader (5,000 rows), with three
/// readings at each instant so runs end part-way through one: reduced as it
/// is read, it keeps exactly what reducing the whole series keeps.
async fn a_long_series_is_reduced_as_it_is_read_exactly_as_when_read_whole(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let start = t(0, 0);
    let msgs: Vec<_> = (0..12_001u32)
        .map(|i| {
            let v = match i {
                7_777 => 79.0,
                5_000 => 100.0,
                _ => 90.0 + f64::from(i % 7),
            };
            let at = start + Duration::seconds(i64::from(i / 3));
            msg(&format!("d{}", i % 3), i, p, at, vec![num("spo2", v)])
        })
        .collect();
    for chunk in msgs.chunks(2_000) {
        s.store_obs_batch(chunk).await.expect("batch");
    }
    let whole = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(whole.len(), 12_001);
    for max in [400, 41, 2] {
        let reduced = obs(
            s,
            ObservationQuery {
                patient_id: p,
                max_points: Some(max),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            reduced,
            vigil_store::downsample::min_max(whole.clone(), max),
            "max_points {max}"
        );
        if max > 2 {
            assert!(reduced.iter().any(|r| r.value == ObsValue::Number(79.0)));
        }
    }
}

async fn a_long_score_history_is_reduced_as_it_is_read_and_its_newest_read_backwards(
    s: &dyn Store,
) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let other = admit(s, w, "Bob").await;
    let start = t(0, 0);
    // Three scores at each instant, so that runs of 5,000 end part-way
    // through one; a 9 and a 0 to find again; now and then a NEWS2 that
    // does not apply (no total).
    let rows: Vec<NewScore> = (0..12_001i64)
        .map(|i| NewScore {
            patient_id: p,
            scored_at: start + Duration::seconds(i / 3),
            computed_at: start,
            total: match i {
                7_777 => Some(9),
                5_000 => Some(0),
                _ if i % 101 == 0 => None,
                _ => Some(2 + i % 4),
            },
            risk: None,
            partial: false,
            detail: serde_json::json!({"i": i}),
            obs_ids: vec![i],
        })
        .collect();
    for chunk in rows.chunks(2_000) {
        s.score_insert_many(chunk).await.expect("scores");
    }
    s.score_insert_many(&[NewScore {
        patient_id: other,
        ..rows[0].clone()
    }])
    .await
    .expect("another patient's score");
    let whole = s.scores(p, None, None).await.expect("scores");
    assert_eq!(whole.len(), 12_001);
    for max in [400, 41, 2] {
        let reduced = s
            .scores_downsampled(p, None, None, max)
            .await
            .expect("reduced");
        assert_eq!(
            reduced,
            vigil_store::downsample::min_max(whole.clone(), max),
            "max_points {max}"
        );
        assert!(reduced.len() <= max);
        if max > 2 {
            assert!(reduced.iter().any(|r| r.total == Some(9)), "the 9 kept");
            assert!(reduced.iter().any(|r| r.total == Some(0)), "the 0 kept");
        }
    }
    // A window, both edges inclusive.
    let (from, to) = (
        start + Duration::seconds(1_000),
        start + Duration::seconds(2_000),
    );
    let window: Vec<_> = whole
        .iter()
        .filter(|r| r.scored_at >= from && r.scored_at <= to)
        .cloned()
        .collect();
    assert_eq!(window.len(), 3_003);
    assert_eq!(
        s.scores_downsampled(p, Some(from), Some(to), 100)
            .await
            .expect("reduced window"),
        vigil_store::downsample::min_max(window.clone(), 100)
    );
    assert_eq!(
        s.scores_downsampled(p, Some(from), Some(to), 5_000)
            .await
            .expect("a window shorter than max_points"),
        window,
        "kept whole when it fits"
    );
    // The newest, in time order; ties at an instant by id.
    for (n, from, to, expect) in [
        (30, None, None, &whole[whole.len() - 30..]),
        (2, None, None, &whole[whole.len() - 2..]),
        (4, Some(from), Some(to), &window[window.len() - 4..]),
        (5_000, Some(from), Some(to), &window[..]),
    ] {
        assert_eq!(
            s.scores_newest(p, from, to, n).await.expect("newest"),
            expect,
            "newest {n}"
        );
    }
    assert!(
        s.scores_newest(p, Some(start + Duration::days(1)), None, 5)
            .await
            .expect("none")
            .is_empty()
    );
}

async fn latest_per_code_is_as_of_a_time_and_breaks_ties_by_insert(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    s.store_obs_batch(&[
        msg("d1", 1, p, t(8, 1), vec![num("spo2", 95.0)]),
        msg("d1", 3, p, t(8, 5), vec![num("spo2", 90.0)]),
        msg("d1", 2, p, t(8, 3), vec![num("pulse", 80.0)]),
    ])
    .await
    .expect("batch");
    let at = |h, m| async move { values(&s.latest_per_code(p, t(h, m)).await.expect("latest")) };
    assert!(at(8, 0).await.is_empty());
    assert_eq!(
        at(8, 4).await,
        [("pulse".to_string(), 80.0), ("spo2".to_string(), 95.0)]
    );
    assert_eq!(
        at(8, 5).await,
        [("pulse".to_string(), 80.0), ("spo2".to_string(), 90.0)],
        "as-of time is inclusive"
    );

    // Two readings at the same instant: the one stored last wins, on both backends.
    s.store_obs_batch(&[msg("d1", 4, p, t(8, 10), vec![num("spo2", 88.0)])])
        .await
        .expect("batch");
    s.store_obs_batch(&[msg("d2", 1, p, t(8, 10), vec![num("spo2", 89.0)])])
        .await
        .expect("batch");
    let latest = s.latest_per_code(p, t(9, 0)).await.expect("latest");
    let spo2 = latest.iter().find(|r| r.code == "spo2").expect("spo2");
    assert_eq!(
        (spo2.value.clone(), spo2.device_id.as_str(), spo2.seq),
        (ObsValue::Number(89.0), "d2", 1)
    );
    // A late reading with an older measurement time does not become "latest".
    s.store_obs_batch(&[msg("d1", 5, p, t(8, 7), vec![num("spo2", 70.0)])])
        .await
        .expect("batch");
    assert_eq!(
        at(9, 0).await,
        [("pulse".to_string(), 80.0), ("spo2".to_string(), 89.0)]
    );
    assert_eq!(
        at(8, 8).await,
        [("pulse".to_string(), 80.0), ("spo2".to_string(), 70.0)]
    );
}

async fn readings_for_scoring_answer_like_one_patient_at_a_time(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    let cat = admit(s, w, "Cat").await;
    s.store_obs_batch(&[
        msg(
            "a1",
            1,
            ann,
            t(8, 1),
            vec![num("spo2", 95.0), num("pulse", 80.0)],
        ),
        msg("a1", 2, ann, t(8, 5), vec![num("spo2", 90.0)]),
        msg("a2", 1, ann, t(8, 5), vec![num("spo2", 91.0)]),
        msg("a1", 3, ann, t(8, 10), vec![num("pulse", 99.0)]),
        msg("a1", 4, ann, t(8, 20), vec![num("pulse", 100.0)]),
        msg("b1", 1, bob, t(8, 2), vec![num("resp_rate", 18.0)]),
        msg("b1", 2, bob, t(9, 30), vec![num("resp_rate", 30.0)]),
    ])
    .await
    .expect("batch");
    // Ann over a span with a tie at its start; Bob at one instant (nothing
    // later is asked for); Cat has nothing stored; 999 does not exist.
    let spans = [
        (ann, t(8, 5), t(8, 10)),
        (bob, t(9, 0), t(9, 0)),
        (cat, t(8, 0), t(9, 0)),
        (999, t(8, 0), t(9, 0)),
    ];
    // Every code stored, and more that nobody measured.
    let all = ["pulse", "resp_rate", "spo2", "temp"];
    let got = s
        .readings_for_scoring(&spans, &all)
        .await
        .expect("readings");
    let mut keys: Vec<i64> = got.keys().copied().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![ann, bob],
        "patients with nothing stored are absent"
    );
    for (p, first, last) in [spans[0], spans[1]] {
        let base = s.latest_per_code(p, first).await.expect("latest");
        let later = if last > first {
            obs(
                s,
                ObservationQuery {
                    patient_id: p,
                    code: None,
                    from: Some(first),
                    to: Some(last),
                    max_points: None,
                },
            )
            .await
        } else {
            Vec::new()
        };
        assert_eq!(got[&p], ScoringReads { base, later }, "patient {p}");
    }
    // Some codes only: the same rows, less those of other codes; Bob, who
    // has none of them, is absent.
    let some = s
        .readings_for_scoring(&spans, &["spo2"])
        .await
        .expect("readings");
    assert_eq!(some.keys().copied().collect::<Vec<_>>(), vec![ann]);
    let only_spo2 = |rows: &[ObservationRow]| {
        rows.iter()
            .filter(|r| r.code == "spo2")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        some[&ann],
        ScoringReads {
            base: only_spo2(&got[&ann].base),
            later: only_spo2(&got[&ann].later)
        }
    );
    assert!(
        s.readings_for_scoring(&spans, &[])
            .await
            .expect("no codes")
            .is_empty()
    );
    // And what that is: the later of two readings at one instant, both
    // edges of the span, nothing after it.
    assert_eq!(
        values(&got[&ann].base),
        [("pulse".to_string(), 80.0), ("spo2".to_string(), 91.0)]
    );
    assert_eq!(
        values(&got[&ann].later),
        [
            ("pulse".to_string(), 99.0),
            ("spo2".to_string(), 90.0),
            ("spo2".to_string(), 91.0)
        ]
    );
    assert_eq!(values(&got[&bob].base), [("resp_rate".to_string(), 18.0)]);
    assert!(got[&bob].later.is_empty());
    assert!(
        s.readings_for_scoring(&[], &all)
            .await
            .expect("nothing")
            .is_empty()
    );
}

async fn episode_settings_many_answer_like_one_patient_at_a_time(s: &dyn Store) {
    let w = ward(s, "W").await;
    let ann = admit(s, w, "Ann").await;
    let bob = admit(s, w, "Bob").await;
    let gone = admit(s, w, "Cat").await;
    s.episode_update(
        bob,
        EpisodeUpdate {
            spo2_scale: Some(2),
            ..Default::default()
        },
        "dr-who",
        t(9, 0),
    )
    .await
    .expect("update");
    s.patient_discharge(gone, "admin", t(10, 0))
        .await
        .expect("discharge");
    let got = s
        .episode_settings_many(&[ann, bob, gone, 999, ann])
        .await
        .expect("many");
    let mut keys: Vec<i64> = got.keys().copied().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![ann, bob],
        "discharged and unknown patients are absent"
    );
    for p in [ann, bob] {
        assert_eq!(
            Some(&got[&p]),
            s.episode_settings(p).await.expect("one").as_ref(),
            "patient {p}"
        );
    }
    assert_eq!(got[&bob].spo2_scale, 2);
    assert!(
        s.episode_settings_many(&[])
            .await
            .expect("nothing")
            .is_empty()
    );
}

/// The ward's recently discharged: the latest stay's discharge within the
/// window, the latest first; not a patient on the ward now (admitted again),
/// not one discharged before the window, not another ward's.
async fn discharged_patients_are_listed_until_admitted_again(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let ann = admit(s, w1, "Ann").await;
    let bob = admit(s, w1, "Bob").await;
    let cat = admit(s, w2, "Cat").await;
    let _open = admit(s, w1, "Dan").await;
    let old = admit(s, w1, "Eve").await;
    for (p, at) in [
        (old, t(7, 0)),
        (ann, t(9, 0)),
        (bob, t(10, 0)),
        (cat, t(10, 30)),
    ] {
        s.patient_discharge(p, "admin", at)
            .await
            .expect("discharge");
    }
    let listed = s.patients_discharged(&[w1], t(8, 0)).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.id, p.name.as_str(), p.discharged_at))
            .collect::<Vec<_>>(),
        [(bob, "Bob", t(10, 0)), (ann, "Ann", t(9, 0))],
        "the latest first; Eve before the window, Dan still in, Cat on W2"
    );
    assert_eq!(
        listed[1].nhs_number,
        vigil_store::nhs::test_range_for("Ann")
    );
    assert_eq!(listed[1].pathway, "copd");
    // Admitted again: on the ward list, not among the discharged.
    let mut again = new_patient(w1, "Ann");
    again.admitted_at = t(11, 0);
    assert!(s.patient_admit(again).await.expect("readmit").readmitted);
    let listed = s
        .patients_discharged(&[w1, w2], t(8, 0))
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|p| p.id).collect::<Vec<_>>(),
        [cat, bob],
        "{listed:?}"
    );
}

async fn patients_list_shows_latest_readings_per_ward(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let a = admit(s, w1, "Ann").await;
    let b = admit(s, w1, "Bob").await;
    let c = admit(s, w2, "Cat").await;
    s.store_obs_batch(&[
        msg(
            "d1",
            1,
            a,
            t(8, 1),
            vec![num("spo2", 95.0), num("pulse", 70.0)],
        ),
        msg("d1", 2, a, t(8, 2), vec![num("spo2", 93.0)]),
        msg("d2", 1, a, t(8, 2), vec![num("spo2", 92.0)]),
        msg(
            "d3",
            1,
            c,
            t(9, 0),
            vec![NewObservation {
                code: "acvpu".into(),
                value: ObsValue::Text("A".into()),
                unit: None,
            }],
        ),
    ])
    .await
    .expect("batch");
    let list = s.patients_list(&[w2, w1]).await.expect("list");
    assert_eq!(
        list.iter().map(|p| (p.id, p.ward_id)).collect::<Vec<_>>(),
        [(c, w2), (a, w1), (b, w1)],
        "ward order, then patient"
    );
    let ann = &list[1];
    assert_eq!(
        (
            ann.name.as_str(),
            ann.nhs_number.as_str(),
            ann.pathway.as_str(),
            ann.last_reading_at
        ),
        (
            "Ann",
            vigil_store::nhs::test_range_for("Ann").as_str(),
            "copd",
            Some(t(8, 2))
        )
    );
    let latest: Vec<_> = ann
        .latest
        .iter()
        .map(|l| (l.code.as_str(), l.value.clone(), l.device_id.as_str()))
        .collect();
    assert_eq!(
        latest,
        [
            ("pulse", ObsValue::Number(70.0), "d1"),
            ("spo2", ObsValue::Number(92.0), "d2")
        ]
    );
    assert_eq!(list[0].latest[0].value, ObsValue::Text("A".into()));
    assert!(list[2].latest.is_empty() && list[2].last_reading_at.is_none());
    assert!(s.patients_list(&[]).await.expect("list").is_empty());
}

async fn text_sorts_bytewise_whatever_the_locale(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    // Bytewise (SQLite): "Zeta" < "alpha" < "b_x" < "ba"; a natural-language
    // collation would put "alpha" first and "ba" before "b_x".
    let codes = ["ba", "alpha", "Zeta", "b_x"];
    let batch: Vec<_> = codes
        .iter()
        .zip(1..)
        .map(|(c, seq)| msg("d1", seq, p, t(8, seq), vec![num(c, 1.0)]))
        .collect();
    s.store_obs_batch(&batch).await.expect("batch");
    let want = ["Zeta", "alpha", "b_x", "ba"];
    let all = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        all.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
        want
    );
    let latest = s.latest_per_code(p, t(9, 0)).await.expect("latest");
    assert_eq!(
        latest.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
        want
    );
    let list = s.patients_list(&[w]).await.expect("list");
    assert_eq!(
        list[0]
            .latest
            .iter()
            .map(|r| r.code.as_str())
            .collect::<Vec<_>>(),
        want
    );
    // Device ids too: a patient's devices, and ECG chunks starting together.
    for id in ["alpha", "Zeta"] {
        s.device_provision(device(id, "ecg-patch", Some(p)))
            .await
            .expect("provision");
        s.store_ecg_batch(&[ecg_chunk(id, 1, p, 0)])
            .await
            .expect("ecg");
    }
    let devices = s
        .patient_get(p)
        .await
        .expect("get")
        .expect("patient")
        .devices;
    assert_eq!(
        devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["Zeta", "alpha"]
    );
    let (chunks, _) = s.ecg_range(p, 0, 1000).await.expect("range");
    assert_eq!(
        chunks
            .iter()
            .map(|c| c.device_id.as_str())
            .collect::<Vec<_>>(),
        ["Zeta", "alpha"]
    );
}

type PlanRecorded = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

async fn plan_of(s: &dyn Store, p: i64) -> PlanRecorded {
    let e = s
        .episode_settings(p)
        .await
        .expect("settings")
        .expect("open episode");
    (
        e.escalation_plan,
        e.escalation_note,
        e.escalation_set_by,
        e.escalation_set_at,
    )
}

async fn the_escalation_plan_is_the_stays_own_with_who_recorded_it(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    assert_eq!(
        plan_of(s, p).await,
        (None, None, None, None),
        "none at admission"
    );
    let record = |plan: &str, note: Option<&str>| EpisodeUpdate {
        escalation_plan: Some(plan.into()),
        escalation_note: note.map(Into::into),
        ..Default::default()
    };
    s.episode_update(
        p,
        record("home", Some("ReSPECT form on the fridge")),
        "dr_a",
        t(9, 0),
    )
    .await
    .expect("update");
    assert_eq!(
        plan_of(s, p).await,
        (
            Some("home".into()),
            Some("ReSPECT form on the fridge".into()),
            Some("dr_a".into()),
            Some(t(9, 0))
        )
    );
    // Another change leaves the plan alone.
    s.episode_update(
        p,
        EpisodeUpdate {
            oxygen: Some(false),
            ..Default::default()
        },
        "nurse_b",
        t(9, 30),
    )
    .await
    .expect("update");
    assert_eq!(plan_of(s, p).await.0.as_deref(), Some("home"));
    // A plan recorded again without details has none: the old details
    // were those of the old plan.
    s.episode_update(p, record("comfort", None), "dr_b", t(10, 0))
        .await
        .expect("update");
    assert_eq!(
        plan_of(s, p).await,
        (
            Some("comfort".into()),
            None,
            Some("dr_b".into()),
            Some(t(10, 0))
        )
    );
    // Cleared: none, kept as who cleared it and when.
    s.episode_update(
        p,
        record("not-recorded", Some("ignored")),
        "dr_c",
        t(10, 30),
    )
    .await
    .expect("update");
    assert_eq!(
        plan_of(s, p).await,
        (None, None, Some("dr_c".into()), Some(t(10, 30)))
    );
    // Admitted again: the new stay starts with none, whatever the last one had.
    s.episode_update(
        p,
        record("hospital", Some("for IV antibiotics")),
        "dr_a",
        t(11, 0),
    )
    .await
    .expect("update");
    s.patient_discharge(p, "admin", t(12, 0))
        .await
        .expect("discharge");
    let again = s
        .patient_admit(new_patient(w, "Ann"))
        .await
        .expect("admitted again");
    assert!(again.readmitted && again.id == p, "{again:?}");
    assert_eq!(
        plan_of(s, p).await,
        (None, None, None, None),
        "a new stay's own"
    );
}

async fn plans_recorded_on_a_ward_since_are_given_as_they_are_now(s: &dyn Store) {
    let (w1, w2) = (ward(s, "W1").await, ward(s, "W2").await);
    let ann = admit(s, w1, "Ann").await;
    let bob = admit(s, w1, "Bob").await;
    let cat = admit(s, w1, "Cat").await;
    let dan = admit(s, w2, "Dan").await;
    let plan = |plan: &str, note: Option<&str>| EpisodeUpdate {
        escalation_plan: Some(plan.into()),
        escalation_note: note.map(Into::into),
        ..Default::default()
    };
    let at = |p, u: EpisodeUpdate, by: &'static str, when| async move {
        s.episode_update(p, u, by, when).await.expect("update");
    };
    at(
        ann,
        plan("home", Some("ReSPECT form with the GP")),
        "dr_a",
        t(8, 0),
    )
    .await;
    at(bob, plan("hospital", None), "dr_a", t(9, 0)).await;
    // Changed since: only the last change is given, as it is now.
    at(ann, plan("comfort", None), "dr_b", t(10, 0)).await;
    // Cleared: given, with who cleared it.
    at(bob, plan("not-recorded", None), "dr_c", t(10, 30)).await;
    // Another change to the episode is not a plan's.
    at(
        cat,
        EpisodeUpdate {
            oxygen: Some(true),
            ..Default::default()
        },
        "nurse",
        t(10, 40),
    )
    .await;
    at(dan, plan("home", None), "dr_d", t(10, 45)).await;
    let got = s.plans_since(&[w1], t(9, 30)).await.expect("plans");
    assert_eq!(
        got.iter()
            .map(|p| (
                p.patient_id,
                p.escalation_plan.as_deref(),
                p.escalation_note.as_deref(),
                p.set_by.as_str(),
                p.set_at
            ))
            .collect::<Vec<_>>(),
        vec![
            (bob, None, None, "dr_c", t(10, 30)),
            (ann, Some("comfort"), None, "dr_b", t(10, 0)),
        ],
        "the latest first, each as it is now"
    );
    assert_eq!((got[1].patient_name.as_str(), got[1].ward_id), ("Ann", w1));
    assert_eq!(got[1].nhs_number, vigil_store::nhs::test_range_for("Ann"));
    // Both wards; the window's start included.
    let both = s.plans_since(&[w1, w2], t(10, 0)).await.expect("plans");
    assert_eq!(
        both.iter().map(|p| p.patient_id).collect::<Vec<_>>(),
        vec![dan, bob, ann]
    );
    // A discharged patient's plan is no stay's now.
    s.patient_discharge(ann, "admin", t(11, 0))
        .await
        .expect("discharge");
    let after = s.plans_since(&[w1], t(8, 0)).await.expect("plans");
    assert_eq!(
        after.iter().map(|p| p.patient_id).collect::<Vec<_>>(),
        vec![bob]
    );
}

async fn follow_ups_are_the_stays_until_raised_or_taken_back(s: &dyn Store) {
    let (w1, w2) = (ward(s, "W1").await, ward(s, "W2").await);
    let ann = admit(s, w1, "Ann").await;
    let bob = admit(s, w2, "Bob").await;
    let a1 = s
        .follow_up_add(ann, t(10, 0), "Call back: inhaler taken?", "sam", t(9, 0))
        .await
        .expect("add");
    assert_eq!(
        (
            a1.patient_id,
            a1.due_at,
            a1.reason.as_str(),
            a1.set_by.as_str(),
            a1.set_at
        ),
        (ann, t(10, 0), "Call back: inhaler taken?", "sam", t(9, 0))
    );
    let a2 = s
        .follow_up_add(ann, t(9, 30), "Check the new cuff works", "sam", t(9, 1))
        .await
        .expect("add");
    let b1 = s
        .follow_up_add(bob, t(9, 45), "Ring daughter", "kim", t(9, 2))
        .await
        .expect("add");
    let ids = |v: Vec<FollowUp>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.follow_ups_pending(ann).await.expect("pending")),
        vec![a2.id, a1.id],
        "the earliest due first"
    );
    // Due: the earliest first, across wards, with the ward; the limit kept.
    assert!(
        s.follow_ups_due(t(9, 29), 10)
            .await
            .expect("due")
            .is_empty()
    );
    let due = s.follow_ups_due(t(9, 50), 10).await.expect("due");
    assert_eq!(
        due.iter()
            .map(|d| (d.follow_up.id, d.ward_id))
            .collect::<Vec<_>>(),
        vec![(a2.id, w1), (b1.id, w2)]
    );
    assert_eq!(due[0].follow_up, a2);
    assert_eq!(s.follow_ups_due(t(9, 50), 1).await.expect("due").len(), 1);
    // The handover's: a ward's, due by a time, the earliest first, with whom.
    let upcoming = s
        .follow_ups_upcoming(&[w1], t(9, 59))
        .await
        .expect("upcoming");
    assert_eq!(
        upcoming
            .iter()
            .map(|u| (u.follow_up.id, u.patient_name.as_str(), u.ward_id))
            .collect::<Vec<_>>(),
        vec![(a2.id, "Ann", w1)],
        "due by 9:59 on W1 only"
    );
    assert_eq!(upcoming[0].follow_up, a2);
    assert_eq!(
        s.follow_ups_upcoming(&[w1, w2], t(10, 0))
            .await
            .expect("upcoming")
            .iter()
            .map(|u| u.follow_up.id)
            .collect::<Vec<_>>(),
        vec![a2.id, b1.id, a1.id]
    );
    // Put in the queue: pending and due no more; marking it again changes nothing.
    s.follow_up_raised(a2.id, None, t(9, 50))
        .await
        .expect("raised");
    s.follow_up_raised(a2.id, None, t(9, 51))
        .await
        .expect("again");
    assert_eq!(
        ids(s.follow_ups_pending(ann).await.expect("pending")),
        vec![a1.id]
    );
    assert_eq!(
        s.follow_ups_due(t(9, 50), 10)
            .await
            .expect("due")
            .iter()
            .map(|d| d.follow_up.id)
            .collect::<Vec<_>>(),
        vec![b1.id]
    );
    // Taken back: once; not another patient's; not one already raised.
    assert!(matches!(
        s.follow_up_cancel(bob, a1.id, "kim", t(9, 52)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.follow_up_cancel(ann, a2.id, "sam", t(9, 52)).await,
        Err(StoreError::Conflict(_))
    ));
    let cancelled = s
        .follow_up_cancel(ann, a1.id, "sam", t(9, 53))
        .await
        .expect("cancel");
    assert_eq!(cancelled, a1);
    assert!(matches!(
        s.follow_up_cancel(ann, a1.id, "sam", t(9, 54)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.follow_ups_pending(ann).await.expect("pending").is_empty());
    assert!(
        s.follow_ups_due(t(11, 0), 10)
            .await
            .expect("due")
            .iter()
            .all(|d| d.follow_up.id != a1.id)
    );
    // A stay's own: none after a discharge, and none can be asked for then.
    s.patient_discharge(bob, "admin", t(10, 0))
        .await
        .expect("discharge");
    assert!(s.follow_ups_pending(bob).await.expect("pending").is_empty());
    assert!(
        s.follow_ups_upcoming(&[w2], t(23, 0))
            .await
            .expect("upcoming")
            .is_empty(),
        "a discharged patient's are no one's to make"
    );
    assert!(matches!(
        s.follow_up_add(bob, t(11, 0), "x", "kim", t(10, 1)).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn episode_update_records_who_and_when(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let before = s
        .episode_settings(p)
        .await
        .expect("settings")
        .expect("open episode");
    assert_eq!(
        before,
        EpisodeSettings {
            patient_id: p,
            ward_id: w,
            pathway: "copd".into(),
            spo2_scale: 1,
            ..Default::default()
        }
    );
    let u = EpisodeUpdate {
        spo2_scale: Some(2),
        oxygen: Some(true),
        acvpu: Some("C".into()),
        under_16: None,
        pregnant: Some(true),
        obs_every_minutes: Some(240),
        escalation_plan: None,
        escalation_note: None,
    };
    s.episode_update(p, u, "nurse_a", t(9, 0))
        .await
        .expect("update");
    s.episode_update(
        p,
        EpisodeUpdate {
            oxygen: Some(false),
            ..Default::default()
        },
        "nurse_b",
        t(10, 0),
    )
    .await
    .expect("update");
    let e = s
        .episode_settings(p)
        .await
        .expect("settings")
        .expect("open episode");
    assert_eq!(
        (
            e.spo2_scale,
            e.spo2_scale_set_by.as_deref(),
            e.spo2_scale_set_at
        ),
        (2, Some("nurse_a"), Some(t(9, 0)))
    );
    assert_eq!(
        (e.oxygen, e.oxygen_set_by.as_deref(), e.oxygen_set_at),
        (Some(false), Some("nurse_b"), Some(t(10, 0)))
    );
    assert_eq!(
        (
            e.acvpu.as_deref(),
            e.acvpu_set_by.as_deref(),
            e.acvpu_set_at
        ),
        (Some("C"), Some("nurse_a"), Some(t(9, 0)))
    );
    assert_eq!((e.under_16, e.pregnant), (false, true));
    assert_eq!(
        (
            e.obs_every_minutes,
            e.obs_every_set_by.as_deref(),
            e.obs_every_set_at
        ),
        (Some(240), Some("nurse_a"), Some(t(9, 0)))
    );
    // 0: back to the pathway's, with who went back and when.
    s.episode_update(
        p,
        EpisodeUpdate {
            obs_every_minutes: Some(0),
            ..Default::default()
        },
        "nurse_b",
        t(10, 30),
    )
    .await
    .expect("update");
    let back = s
        .episode_settings(p)
        .await
        .expect("settings")
        .expect("open episode");
    assert_eq!(
        (
            back.obs_every_minutes,
            back.obs_every_set_by.as_deref(),
            back.obs_every_set_at
        ),
        (None, Some("nurse_b"), Some(t(10, 30)))
    );
    let ep = s
        .patient_get(p)
        .await
        .expect("get")
        .expect("patient")
        .episode
        .expect("episode");
    assert_eq!(ep.spo2_scale, 2);

    s.patient_discharge(p, "admin", t(11, 0))
        .await
        .expect("discharge");
    let late = s
        .episode_update(
            p,
            EpisodeUpdate {
                oxygen: Some(true),
                ..Default::default()
            },
            "n",
            t(12, 0),
        )
        .await;
    assert!(matches!(late, Err(StoreError::NotFound(_))));
}

async fn failed_episode_update_changes_nothing(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    // The oxygen change is applied before the invalid ACVPU is refused; the
    // transaction must take both back.
    let u = EpisodeUpdate {
        oxygen: Some(true),
        acvpu: Some("X".into()),
        ..Default::default()
    };
    assert!(s.episode_update(p, u, "nurse_a", t(9, 0)).await.is_err());
    let e = s
        .episode_settings(p)
        .await
        .expect("settings")
        .expect("open episode");
    assert_eq!((e.oxygen, e.oxygen_set_by, e.acvpu), (None, None, None));
}

// --- scores ------------------------------------------------------------------

async fn scores_history_is_ordered_by_the_time_it_describes(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let other = admit(s, w, "Bob").await;
    let score = |at: DateTime<Utc>, total: Option<i64>| NewScore {
        patient_id: p,
        scored_at: at,
        computed_at: t(12, 0),
        total,
        risk: total.map(|_| "low".to_string()),
        partial: total.is_none(),
        detail: serde_json::json!({"total": total, "subscores": [{"code": "spo2", "points": 1}], "note": "ä \"q\""}),
        obs_ids: vec![3, 1, 2],
    };
    let late = s
        .score_insert(score(t(9, 0), Some(3)))
        .await
        .expect("score");
    let early = s.score_insert(score(t(8, 0), None)).await.expect("score");
    let mid = s
        .score_insert(score(t(8, 30), Some(5)))
        .await
        .expect("score");
    assert_ne!(late, early);

    let all = s.scores(p, None, None).await.expect("scores");
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        [early, mid, late]
    );
    let r = &all[1];
    assert_eq!(
        (
            r.scored_at,
            r.computed_at,
            r.total,
            r.risk.as_deref(),
            r.partial
        ),
        (t(8, 30), t(12, 0), Some(5), Some("low"), false)
    );
    assert_eq!(
        r.detail,
        score(t(8, 30), Some(5)).detail,
        "detail JSON round-trips"
    );
    assert_eq!(r.obs_ids, [3, 1, 2], "obs ids keep their order");
    assert_eq!(
        (all[0].total, all[0].risk.as_deref(), all[0].partial),
        (None, None, true)
    );

    let range = s
        .scores(p, Some(t(8, 30)), Some(t(9, 0)))
        .await
        .expect("scores");
    assert_eq!(
        range.iter().map(|r| r.id).collect::<Vec<_>>(),
        [mid, late],
        "both edges inclusive"
    );
    assert_eq!(
        s.scores(p, Some(t(8, 31)), None)
            .await
            .expect("scores")
            .len(),
        1
    );
    assert_eq!(
        s.scores(p, None, Some(t(8, 29)))
            .await
            .expect("scores")
            .len(),
        1
    );
    assert_eq!(s.latest_score_time(p).await.expect("latest"), Some(t(9, 0)));
    assert_eq!(s.latest_score_time(other).await.expect("latest"), None);
    assert!(
        s.scores(other, None, None)
            .await
            .expect("scores")
            .is_empty()
    );
}

async fn history_pages_are_bounded_and_start_where_asked(s: &dyn Store) {
    use std::ops::Bound;
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let other = admit(s, w, "Bob").await;
    // spo2 at 8:00, 8:01, 8:02 (two devices at 8:02), 8:03; pulse alongside.
    let batch = vec![
        msg(
            "d1",
            1,
            p,
            t(8, 0),
            vec![num("spo2", 90.0), num("pulse", 60.0)],
        ),
        msg("d1", 2, p, t(8, 1), vec![num("spo2", 91.0)]),
        msg("d1", 3, p, t(8, 2), vec![num("spo2", 92.0)]),
        msg("d2", 1, p, t(8, 2), vec![num("spo2", 82.0)]),
        msg("d1", 4, p, t(8, 3), vec![num("spo2", 93.0)]),
        msg("d9", 1, other, t(8, 1), vec![num("spo2", 50.0)]),
    ];
    s.store_obs_batch(&batch).await.expect("batch");
    let page = |since, to, limit| HistoryPage {
        patient_id: p,
        after_id: None,
        since,
        to,
        limit,
    };
    let spo2 = |pg: HistoryPage| async move {
        s.observations_page(&pg, "spo2")
            .await
            .expect("page")
            .iter()
            .map(|r| (r.measured_at, r.value.clone(), r.id))
            .collect::<Vec<_>>()
    };
    let all = spo2(page(Bound::Unbounded, None, i64::MAX)).await;
    assert_eq!(
        all.iter().map(|r| r.0).collect::<Vec<_>>(),
        [t(8, 0), t(8, 1), t(8, 2), t(8, 2), t(8, 3)],
        "only this patient's spo2, by time"
    );
    assert!(all[2].2 < all[3].2, "ties by id");
    assert_eq!(spo2(page(Bound::Unbounded, None, 2)).await, all[..2]);
    assert_eq!(
        spo2(page(Bound::Included(t(8, 2)), None, 10)).await,
        all[2..],
        "from a time, included"
    );
    assert_eq!(
        spo2(page(Bound::Excluded(t(8, 2)), None, 10)).await,
        all[4..],
        "after a time"
    );
    assert_eq!(
        spo2(page(Bound::Included(t(8, 1)), Some(t(8, 2)), 10)).await,
        all[1..4],
        "to a time, included"
    );
    let row = s
        .observation_row(p, all[3].2)
        .await
        .expect("row")
        .expect("found");
    assert_eq!((row.device_id.as_str(), row.seq), ("d2", 1));
    assert_eq!(
        s.observation_row(other, all[3].2).await.expect("row"),
        None,
        "a row is found only as its own patient's"
    );

    let score = |at, total| NewScore {
        patient_id: p,
        scored_at: at,
        computed_at: t(12, 0),
        total: Some(total),
        risk: Some("low".into()),
        partial: false,
        detail: serde_json::json!({}),
        obs_ids: vec![],
    };
    let a = s.score_insert(score(t(8, 0), 1)).await.expect("score");
    let b = s.score_insert(score(t(8, 5), 2)).await.expect("score");
    let c = s.score_insert(score(t(8, 5), 3)).await.expect("score");
    let ids = |rows: Vec<ScoreRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .scores_page(&page(Bound::Unbounded, None, 2))
            .await
            .expect("page")),
        [a, b]
    );
    assert_eq!(
        ids(s
            .scores_page(&page(Bound::Excluded(t(8, 0)), Some(t(8, 5)), 9))
            .await
            .expect("page")),
        [b, c]
    );
    assert_eq!(
        s.score_row(p, c).await.expect("row").map(|r| r.total),
        Some(Some(3))
    );
    assert_eq!(s.score_row(other, c).await.expect("row"), None);
}

// --- stats -------------------------------------------------------------------

async fn stats_count_what_is_stored(s: &dyn Store) {
    assert_eq!(s.stats().await.expect("stats"), Stats::default());
    s.ping().await.expect("ping");
    let w = ward(s, "W").await;
    let a = admit(s, w, "Ann").await;
    let b = admit(s, w, "Bob").await;
    s.patient_discharge(b, "admin", t(9, 0))
        .await
        .expect("discharge");
    s.device_provision(device("ox-1", "oximeter", Some(a)))
        .await
        .expect("provision");
    s.device_provision(device("ecg-1", "ecg-patch", Some(a)))
        .await
        .expect("provision");
    s.device_revoke("ecg-1", t(9, 0)).await.expect("revoke");
    s.store_obs_batch(&[msg(
        "ox-1",
        1,
        a,
        t(8, 0),
        vec![num("spo2", 95.0), num("pulse", 70.0)],
    )])
    .await
    .expect("batch");
    s.store_ecg_batch(&[ecg_chunk("ecg-1", 1, a, 0)])
        .await
        .expect("ecg");
    let firing = firing(a, w, "news2", Severity::Medium, t(8, 0));
    s.alert_fire(firing.clone(), t(8, 0)).await.expect("fire");
    s.alert_fire(
        AlertFiring {
            rule_id: "other".into(),
            ..firing
        },
        t(8, 0),
    )
    .await
    .expect("fire");
    let st = s.stats().await.expect("stats");
    assert_eq!(
        st,
        Stats {
            obs_messages: 1,
            observations: 2,
            rejected: 0,
            ecg_chunks: 1,
            alerts_open: 2,
            patients: 1,
            devices: 1
        }
    );
}

// --- ECG ---------------------------------------------------------------------

fn ecg_chunk(device: &str, seq: u32, patient_id: i64, t0_ms: i64) -> NewEcgChunk {
    NewEcgChunk {
        device_id: device.into(),
        seq,
        patient_id,
        t0_ms,
        fs_hz: 250,
        uv_per_count: 2.5,
        n_samples: 500,
        encoding: "delta-zigzag-varint".into(),
        samples: (0..=255u8).collect(),
        received_at: t(8, 0),
    }
}

async fn ecg_chunks_dedup_and_range_overlaps(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    // Each chunk is 2 s (500 samples at 250 Hz).
    let out = s
        .store_ecg_batch(&[
            ecg_chunk("e1", 1, p, 10_000),
            ecg_chunk("e1", 2, p, 12_000),
            ecg_chunk("e1", 1, p, 10_000),
        ])
        .await
        .expect("ecg");
    assert_eq!(out[2], BatchOutcome::Duplicate);
    assert!(
        matches!(out[0], BatchOutcome::Stored { .. })
            && matches!(out[1], BatchOutcome::Stored { .. })
    );
    assert_eq!(
        s.store_ecg_batch(&[ecg_chunk("e1", 2, p, 12_000)])
            .await
            .expect("ecg"),
        [BatchOutcome::Duplicate]
    );
    s.store_ecg_batch(&[ecg_chunk("e1", 3, p, 100_000)])
        .await
        .expect("ecg");
    assert!(
        s.store_ecg_batch(&[
            ecg_chunk("e1", 4, p, 14_000),
            ecg_chunk("e1", 5, 999_999, 16_000)
        ])
        .await
        .is_err()
    );
    assert_eq!(
        s.store_ecg_batch(&[ecg_chunk("e1", 4, p, 14_000)])
            .await
            .expect("ecg"),
        [BatchOutcome::Stored {
            observation_ids: vec![]
        }],
        "the refused batch stored none of its chunks"
    );

    let beats = [
        BeatRow {
            t_ms: 10_100,
            rr_ms: None,
        },
        BeatRow {
            t_ms: 10_900,
            rr_ms: Some(800),
        },
        BeatRow {
            t_ms: 12_500,
            rr_ms: Some(1600),
        },
    ];
    let set = |beats: &[BeatRow]| PatchBeats {
        patient_id: p,
        device_id: "e1".into(),
        beats: beats.to_vec(),
    };
    // Sets of several chunks in one call, as the ingest writes a pass.
    s.store_beats(&[set(&beats[..1]), set(&[]), set(&beats[1..])])
        .await
        .expect("beats");
    s.store_beats(&[set(&beats[1..])])
        .await
        .expect("beats are idempotent");
    s.store_beats(&[]).await.expect("no beats");
    s.store_beats(&[set(&[])]).await.expect("no beats");

    // [11_000, 11_500] overlaps only the first chunk (10.0–12.0 s).
    let (chunks, got) = s.ecg_range(p, 11_000, 11_500).await.expect("range");
    assert_eq!(chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [1]);
    let c = &chunks[0];
    assert_eq!(
        (
            c.device_id.as_str(),
            c.t0_ms,
            c.fs_hz,
            c.uv_per_count,
            c.n_samples
        ),
        ("e1", 10_000, 250, 2.5, 500)
    );
    assert_eq!(
        (c.encoding.as_str(), c.samples.clone()),
        ("delta-zigzag-varint", (0..=255u8).collect::<Vec<_>>())
    );
    assert!(got.is_empty());
    let (chunks, got) = s.ecg_range(p, 10_000, 12_600).await.expect("range");
    assert_eq!(chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(got, beats);
    let (chunks, _) = s.ecg_range(p, 12_000, 12_000).await.expect("range");
    assert_eq!(
        chunks.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 2],
        "touching ends overlap"
    );

    assert_eq!(
        s.ecg_delete_before(50_000).await.expect("delete"),
        3,
        "chunks 1, 2 and 4"
    );
    let (chunks, got) = s.ecg_range(p, 0, 200_000).await.expect("range");
    assert_eq!(chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [3]);
    assert!(got.is_empty());
    assert_eq!(s.stats().await.expect("stats").ecg_chunks, 1);
}

/// Batches bigger than one statement holds (the SQLite store writes a few
/// hundred rows a statement) keep every chunk's outcome in input order.
async fn large_ecg_batches_keep_each_chunks_outcome(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let chunks: Vec<NewEcgChunk> = (0..1_300u32)
        .map(|i| ecg_chunk(&format!("e{}", i % 3), i / 3, p, i64::from(i) * 2_000))
        .collect();
    let out = s.store_ecg_batch(&chunks[..700]).await.expect("first part");
    assert!(out.iter().all(|o| matches!(o, BatchOutcome::Stored { .. })));
    // The whole again, with a repeat of its own last chunk at the end.
    let mut again = chunks.clone();
    again.push(chunks[1_299].clone());
    let out = s.store_ecg_batch(&again).await.expect("all");
    let stored: Vec<bool> = out
        .iter()
        .map(|o| matches!(o, BatchOutcome::Stored { .. }))
        .collect();
    let want: Vec<bool> = (0..1_301).map(|i| (700..1_300).contains(&i)).collect();
    assert_eq!(
        stored, want,
        "the first 700 and the repeat are duplicates, the rest stored"
    );
    assert_eq!(s.stats().await.expect("stats").ecg_chunks, 1_300);

    let beats: Vec<BeatRow> = (0..2_500)
        .map(|i| BeatRow {
            t_ms: i * 800,
            rr_ms: (i > 0).then_some(800),
        })
        .collect();
    let set = |beats: &[BeatRow]| PatchBeats {
        patient_id: p,
        device_id: "e0".into(),
        beats: beats.to_vec(),
    };
    s.store_beats(&[set(&beats[..1_200]), set(&beats[1_000..])])
        .await
        .expect("beats");
    let (_, got) = s.ecg_range(p, 0, 10_000_000).await.expect("range");
    assert_eq!(got, beats, "every beat once, overlapping sets or not");
}

async fn derived_observations_are_queryable(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let rate = |seq: u32, bpm: f64, at: DateTime<Utc>| NewDerivedObservation {
        patient_id: p,
        device_id: "e1".into(),
        seq,
        observation: NewObservation {
            code: "pulse".into(),
            value: ObsValue::Number(bpm),
            unit: Some("/min".into()),
        },
        measured_at: at,
        received_at: t(8, 1),
    };
    assert_eq!(s.store_derived(&[]).await.expect("none"), Vec::<i64>::new());
    let ids = s
        .store_derived(&[rate(9, 72.0, t(8, 0))])
        .await
        .expect("derived");
    let id = ids[0];
    let rows = obs(
        s,
        ObservationQuery {
            patient_id: p,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.id, r.device_id.as_str(), r.seq, r.unit.as_deref()),
        (id, "e1", 9, Some("/min"))
    );
    assert_eq!(
        s.latest_per_code(p, t(8, 0)).await.expect("latest")[0].id,
        id
    );
    let st = s.stats().await.expect("stats");
    assert_eq!(
        (st.obs_messages, st.observations),
        (0, 1),
        "derived rows have no uplink message"
    );
    // Several at once: their ids in the order given.
    let ids = s
        .store_derived(&[rate(11, 90.0, t(8, 20)), rate(10, 80.0, t(8, 10))])
        .await
        .expect("derived");
    let rows = obs(
        s,
        ObservationQuery {
            patient_id: p,
            from: Some(t(8, 5)),
            ..Default::default()
        },
    )
    .await;
    let by_id = |id: i64| {
        rows.iter()
            .find(|r| r.id == id)
            .map(|r| (r.seq, r.measured_at))
    };
    assert_eq!(
        ids.iter().map(|&id| by_id(id)).collect::<Vec<_>>(),
        [Some((11, t(8, 20))), Some((10, t(8, 10)))]
    );
}

async fn beat_times(s: &dyn Store, patient: i64) -> Vec<i64> {
    s.ecg_range(patient, 0, 100_000)
        .await
        .expect("range")
        .1
        .iter()
        .map(|b| b.t_ms)
        .collect()
}

async fn ecg_results_store_beats_and_heart_rates_together_or_neither(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let set = |patient_id: i64, t_ms: i64| PatchBeats {
        patient_id,
        device_id: "e1".into(),
        beats: vec![BeatRow {
            t_ms,
            rr_ms: Some(800),
        }],
    };
    let rate = |patient_id: i64, seq: u32, at: DateTime<Utc>| NewDerivedObservation {
        patient_id,
        device_id: "e1".into(),
        seq,
        observation: NewObservation {
            code: "pulse".into(),
            value: ObsValue::Number(75.0),
            unit: Some("/min".into()),
        },
        measured_at: at,
        received_at: t(8, 1),
    };
    assert_eq!(
        s.store_ecg_results(&[], &[]).await.expect("nothing"),
        Vec::<i64>::new()
    );
    let ids = s
        .store_ecg_results(&[set(p, 1_000), set(p, 1_800)], &[rate(p, 1, t(8, 0))])
        .await
        .expect("both");
    assert_eq!(ids.len(), 1);
    assert_eq!(beat_times(s, p).await, [1_000, 1_800]);
    assert_eq!(
        obs(
            s,
            ObservationQuery {
                patient_id: p,
                ..Default::default()
            }
        )
        .await
        .iter()
        .map(|r| r.id)
        .collect::<Vec<_>>(),
        ids
    );
    // A heart rate of no such patient is refused: the beats of the same
    // call are not stored either.
    assert!(
        s.store_ecg_results(
            &[set(p, 2_600)],
            &[rate(p, 2, t(8, 1)), rate(999_999, 3, t(8, 1))]
        )
        .await
        .is_err()
    );
    assert_eq!(
        beat_times(s, p).await,
        [1_000, 1_800],
        "no beat of the refused call"
    );
    assert_eq!(
        obs(
            s,
            ObservationQuery {
                patient_id: p,
                ..Default::default()
            }
        )
        .await
        .len(),
        1,
        "no heart rate of the refused call"
    );
}

// --- alerts ------------------------------------------------------------------

fn firing(
    patient_id: i64,
    ward_id: i64,
    rule: &str,
    severity: Severity,
    at: DateTime<Utc>,
) -> AlertFiring {
    AlertFiring {
        patient_id,
        ward_id,
        rule_id: rule.into(),
        severity,
        message: format!("{rule} {}", severity.as_str()),
        value: serde_json::json!({"total": 5}),
        evidence: vec![1, 2],
        at,
        escalate_at: Some(at + Duration::minutes(30)),
    }
}

async fn alert_fires_raise_update_and_ignore_superseded_readings(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let (a, o) = s
        .alert_fire(firing(p, w, "news2", Severity::Medium, t(8, 0)), t(8, 1))
        .await
        .expect("fire");
    assert_eq!(o, FiringOutcome::Raised);
    assert_eq!(
        (a.status, a.severity, a.count, a.raised_at, a.updated_at),
        (AlertStatus::Open, Severity::Medium, 1, t(8, 0), t(8, 0))
    );
    assert_eq!(
        (a.escalate_at, a.evidence.clone(), a.latest_value.clone()),
        (Some(t(8, 30)), vec![1, 2], serde_json::json!({"total": 5}))
    );
    assert_eq!(
        (
            a.message.as_str(),
            a.resolved_at,
            a.outcome.clone(),
            a.note.clone()
        ),
        ("news2 medium", None, None, None)
    );

    // A repeat at a lower severity updates the count and value, never the severity.
    let lower = AlertFiring {
        value: serde_json::json!({"total": 3}),
        evidence: vec![7],
        ..firing(p, w, "news2", Severity::Low, t(8, 10))
    };
    let (b, o) = s.alert_fire(lower, t(8, 11)).await.expect("fire");
    assert_eq!(o, FiringOutcome::Updated);
    assert_eq!(
        (b.id, b.count, b.severity, b.message.as_str()),
        (a.id, 2, Severity::Medium, "news2 medium")
    );
    assert_eq!(
        (b.updated_at, b.escalate_at, b.evidence.clone()),
        (t(8, 10), Some(t(8, 30)), vec![7])
    );
    assert_eq!(b.latest_value, serde_json::json!({"total": 3}));

    // A higher severity raises it and brings its (earlier) escalation time.
    let higher = AlertFiring {
        escalate_at: Some(t(8, 25)),
        ..firing(p, w, "news2", Severity::High, t(8, 20))
    };
    let (c, o) = s.alert_fire(higher, t(8, 21)).await.expect("fire");
    assert_eq!(o, FiringOutcome::Updated);
    assert_eq!(
        (c.count, c.severity, c.message.as_str(), c.escalate_at),
        (3, Severity::High, "news2 high", Some(t(8, 25)))
    );

    // A reading older than the latest evidence changes nothing.
    let (d, o) = s
        .alert_fire(firing(p, w, "news2", Severity::High, t(8, 15)), t(8, 30))
        .await
        .expect("fire");
    assert_eq!(o, FiringOutcome::Superseded);
    assert_eq!(d, c);
    // The trail: the raise and the rise in severity. The plain repeat at
    // 8:10 is counted on the alert (`count`), not appended (hazard AL-16).
    let events = s.alert_events(a.id).await.expect("events");
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["raised", "updated"]
    );
    assert_eq!(
        (
            &events[1].detail["severity"],
            &events[1].detail["previous_severity"]
        ),
        (&serde_json::json!("high"), &serde_json::json!("medium")),
        "a rise in severity names both"
    );
    assert!(events.iter().all(|e| e.actor == "system"));
    assert_eq!(
        events[0].at,
        t(8, 1),
        "events are stamped with when they happened"
    );
    assert_eq!(events[0].detail["severity"], "medium");
    assert_eq!(events[0].detail["evidence"], serde_json::json!([1, 2]));

    // Another rule is another alert; after resolving, the same rule raises anew.
    let (other, o) = s
        .alert_fire(firing(p, w, "spo2_low", Severity::Low, t(8, 0)), t(8, 0))
        .await
        .expect("fire");
    assert_eq!(o, FiringOutcome::Raised);
    assert_ne!(other.id, a.id);
    s.alert_act(
        a.id,
        AlertAction::Resolve {
            outcome: "treated".into(),
            note: "".into(),
        },
        "dr",
        t(9, 0),
    )
    .await
    .expect("resolve");
    let (again, o) = s
        .alert_fire(firing(p, w, "news2", Severity::Low, t(9, 5)), t(9, 5))
        .await
        .expect("fire");
    assert_eq!(o, FiringOutcome::Raised);
    assert_ne!(again.id, a.id);
}

async fn alerts_fired_together_see_each_other_and_store_all_or_nothing(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let q = admit(s, w, "Bob").await;
    let batch = |f: AlertFiring, update_only: bool| BatchFiring {
        firing: f,
        update_only,
    };
    let out = s
        .alert_fire_many(
            &[
                // A repeat of an alert that is not live changes nothing…
                batch(firing(p, w, "spo2_low", Severity::Low, t(8, 0)), true),
                batch(firing(p, w, "news2", Severity::Medium, t(8, 0)), false),
                batch(firing(q, w, "news2", Severity::Low, t(8, 0)), false),
                // …but one raised earlier in the batch is live.
                batch(firing(p, w, "news2", Severity::Medium, t(8, 5)), true),
                batch(firing(p, w, "news2", Severity::High, t(8, 10)), false),
            ],
            t(8, 11),
        )
        .await
        .expect("fire together");
    let seen: Vec<Option<(i64, i64, FiringOutcome, Severity)>> = out
        .iter()
        .map(|o| {
            o.as_ref()
                .map(|(a, o)| (a.patient_id, a.count, *o, a.severity))
        })
        .collect();
    assert_eq!(
        seen,
        [
            None,
            Some((p, 1, FiringOutcome::Raised, Severity::Medium)),
            Some((q, 1, FiringOutcome::Raised, Severity::Low)),
            Some((p, 2, FiringOutcome::Updated, Severity::Medium)),
            Some((p, 3, FiringOutcome::Updated, Severity::High)),
        ],
        "each firing answers with the alert as it left it, in the order given"
    );
    let live = s.alerts_list(&[w], None, Some(p)).await.expect("list");
    assert_eq!(live.len(), 1, "one news2 alert for Ann, no spo2_low");
    let events = s.alert_events(live[0].id).await.expect("events");
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["raised", "updated"],
        "the raise and the rise to high; the repeat at medium is only counted"
    );

    // A firing the store refuses (no such ward) stores none of its batch.
    let before = s.alerts_list(&[w], None, None).await.expect("list");
    let refused = s
        .alert_fire_many(
            &[
                batch(firing(q, w, "news2", Severity::High, t(9, 0)), false),
                batch(firing(q, w, "spo2_low", Severity::Low, t(9, 0)), false),
                batch(
                    firing(q, i64::from(i32::MAX), "lost", Severity::High, t(9, 0)),
                    false,
                ),
            ],
            t(9, 1),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        s.alerts_list(&[w], None, None).await.expect("list"),
        before,
        "all or nothing"
    );
}

async fn live_alert_rules_answer_like_alerts_list(s: &dyn Store) {
    let w = ward(s, "W").await;
    let v = ward(s, "V").await;
    let p = admit(s, w, "Ann").await;
    let q = admit(s, v, "Bob").await;
    let quiet = admit(s, w, "Cy").await;
    assert!(
        s.live_alert_rules(&[])
            .await
            .expect("none asked")
            .is_empty()
    );
    for (patient, ward, rule) in [
        (p, w, "news2"),
        (p, w, "news2-rising"),
        (q, v, "news2"),
        (q, v, "spo2_low"),
    ] {
        s.alert_fire(
            firing(patient, ward, rule, Severity::Medium, t(8, 0)),
            t(8, 0),
        )
        .await
        .expect("fire");
    }
    // A resolved alert is not live.
    let bob = s.alerts_list(&[v], None, Some(q)).await.expect("list");
    let spo2 = bob
        .iter()
        .find(|a| a.rule_id == "spo2_low")
        .expect("spo2_low");
    s.alert_act(
        spo2.id,
        AlertAction::Resolve {
            outcome: "treated".into(),
            note: "".into(),
        },
        "dr",
        t(8, 30),
    )
    .await
    .expect("resolve");
    let live = s
        .live_alert_rules(&[p, q, quiet, i64::from(i32::MAX)])
        .await
        .expect("live rules");
    assert_eq!(
        live.len(),
        2,
        "a patient with no live alert is absent: {live:?}"
    );
    for (patient, ward) in [(p, w), (q, v)] {
        let mut want: Vec<String> = s
            .alerts_list(&[ward], None, Some(patient))
            .await
            .expect("list")
            .into_iter()
            .filter(|a| a.status != AlertStatus::Resolved)
            .map(|a| a.rule_id)
            .collect();
        want.sort();
        assert_eq!(live[&patient], want, "patient {patient}");
    }
    assert_eq!(live[&q], ["news2"], "Bob's resolved spo2_low is not live");
}

async fn scores_and_alerts_of_a_pass_store_together_or_neither(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let score = |at: DateTime<Utc>, total: i64| NewScore {
        patient_id: p,
        scored_at: at,
        computed_at: at,
        total: Some(total),
        risk: Some("medium".into()),
        partial: false,
        detail: serde_json::json!({"total": total}),
        obs_ids: vec![],
    };
    let batch = |f: AlertFiring, update_only: bool| BatchFiring {
        firing: f,
        update_only,
    };
    assert!(
        s.score_and_fire(&[], &[], t(8, 0), &PassProgress::default())
            .await
            .expect("nothing")
            .is_empty()
    );

    // A firing the store refuses (no such ward) keeps the scores out too.
    let refused = s
        .score_and_fire(
            &[score(t(8, 0), 5)],
            &[batch(
                firing(p, i64::from(i32::MAX), "lost", Severity::High, t(8, 0)),
                false,
            )],
            t(8, 1),
            &PassProgress::default(),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        s.scores(p, None, None).await.expect("scores").is_empty(),
        "all or nothing"
    );
    assert!(
        s.alerts_list(&[w], None, None)
            .await
            .expect("list")
            .is_empty()
    );

    // Both stored, the firings answered as alert_fire_many answers them.
    let out = s
        .score_and_fire(
            &[score(t(8, 0), 5), score(t(8, 5), 6)],
            &[
                batch(firing(p, w, "spo2_low", Severity::Low, t(8, 0)), true),
                batch(firing(p, w, "news2", Severity::Medium, t(8, 0)), false),
                batch(firing(p, w, "news2", Severity::Medium, t(8, 5)), false),
            ],
            t(8, 6),
            &PassProgress::default(),
        )
        .await
        .expect("score and fire");
    let seen: Vec<Option<(i64, FiringOutcome)>> = out
        .iter()
        .map(|o| o.as_ref().map(|(a, o)| (a.count, *o)))
        .collect();
    assert_eq!(
        seen,
        [
            None,
            Some((1, FiringOutcome::Raised)),
            Some((2, FiringOutcome::Updated))
        ]
    );
    let totals: Vec<Option<i64>> = s
        .scores(p, None, None)
        .await
        .expect("scores")
        .iter()
        .map(|r| r.total)
        .collect();
    assert_eq!(totals, [Some(5), Some(6)]);
    // Scores alone, alerts alone.
    s.score_and_fire(&[score(t(9, 0), 2)], &[], t(9, 0), &PassProgress::default())
        .await
        .expect("scores only");
    let out = s
        .score_and_fire(
            &[],
            &[batch(firing(p, w, "news2", Severity::High, t(9, 5)), false)],
            t(9, 5),
            &PassProgress::default(),
        )
        .await
        .expect("alerts only");
    assert_eq!(
        out[0].as_ref().map(|(a, o)| (a.count, a.severity, *o)),
        Some((3, Severity::High, FiringOutcome::Updated))
    );
    assert_eq!(s.scores(p, None, None).await.expect("scores").len(), 3);
}

async fn worker_progress_moves_up_with_a_pass_and_names_what_no_pass_finished(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    assert_eq!(s.worker_progress().await.expect("progress"), 0, "fresh");
    let out = s
        .store_obs_batch(&[
            msg(
                "d1",
                1,
                p,
                t(8, 1),
                vec![num("spo2", 95.0), num("pulse", 70.0)],
            ),
            msg("d1", 2, p, t(8, 2), vec![num("spo2", 91.0)]),
        ])
        .await
        .expect("batch");
    let ids: Vec<i64> = out.iter().flat_map(stored_ids).collect();
    assert_eq!(ids.len(), 3);
    // A heart rate the worker derived and stored itself is not the
    // intake's to hand over: never listed.
    let derived = s
        .store_derived(&[NewDerivedObservation {
            patient_id: p,
            device_id: "e1".into(),
            seq: 9,
            observation: NewObservation {
                code: "pulse".into(),
                value: ObsValue::Number(72.0),
                unit: Some("/min".into()),
            },
            measured_at: t(8, 3),
            received_at: t(8, 3),
        }])
        .await
        .expect("derived");
    assert!(derived[0] > ids[2]);
    let after = |from: i64, limit: i64| async move {
        s.observations_after(from, limit)
            .await
            .expect("after")
            .into_iter()
            .map(|(patient, r)| (patient, r.id, r.code, r.measured_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        after(0, 100).await,
        [
            (p, ids[0], "spo2".to_string(), t(8, 1)),
            (p, ids[1], "pulse".to_string(), t(8, 1)),
            (p, ids[2], "spo2".to_string(), t(8, 2)),
        ]
    );
    assert_eq!(after(ids[0], 1).await[0].1, ids[1], "above, by id, limited");

    // Moved in a pass's transaction, and only if it commits.
    let refused = refused_pass(s, p, &PassProgress::observations(ids[2])).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(s.worker_progress().await.expect("progress"), 0);
    s.score_and_fire(&[], &[], t(8, 4), &PassProgress::observations(ids[1]))
        .await
        .expect("progress alone");
    assert_eq!(s.worker_progress().await.expect("progress"), ids[1]);
    assert_eq!(after(ids[1], 100).await.len(), 1);
    // Never down: a pass stored apart after a failure may report late.
    s.set_worker_progress(&PassProgress::observations(ids[0]))
        .await
        .expect("set");
    assert_eq!(s.worker_progress().await.expect("progress"), ids[1]);
    s.set_worker_progress(&PassProgress::observations(ids[2]))
        .await
        .expect("set");
    assert_eq!(s.worker_progress().await.expect("progress"), ids[2]);
    assert!(after(ids[2], 100).await.is_empty());
}

/// A pass with `progress` whose firing the store refuses (no such ward).
async fn refused_pass(
    s: &dyn Store,
    p: i64,
    progress: &PassProgress,
) -> Result<Vec<Option<(AlertRow, FiringOutcome)>>> {
    s.score_and_fire(
        &[],
        &[BatchFiring {
            firing: firing(p, i64::from(i32::MAX), "lost", Severity::High, t(8, 0)),
            update_only: false,
        }],
        t(8, 4),
        progress,
    )
    .await
}

async fn ecg_progress_moves_up_with_a_pass_and_names_the_chunks_no_pass_analysed(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    for d in ["e1", "e2", "ox-1"] {
        s.device_provision(device(d, "ecg-patch", Some(p)))
            .await
            .expect("provision");
    }
    s.store_ecg_batch(&[
        ecg_chunk("e1", 1, p, 0),
        ecg_chunk("e1", 2, p, 2_000),
        ecg_chunk("e2", 7, p, 0),
        ecg_chunk("e1", 3, p, 4_000),
    ])
    .await
    .expect("ecg");
    let unanalysed = |after: Option<(&'static str, u32)>, limit| async move {
        s.ecg_unanalysed(after, limit)
            .await
            .expect("unanalysed")
            .into_iter()
            .map(|c| {
                assert_eq!((c.patient_id, c.ward_id, c.received_at), (p, w, t(8, 0)));
                (c.chunk.device_id, c.chunk.seq)
            })
            .collect::<Vec<_>>()
    };
    let key = |d: &str, seq: u32| (d.to_string(), seq);
    // A patch no pass has analysed: all of its chunks, by device then seq.
    assert_eq!(
        unanalysed(None, 100).await,
        [key("e1", 1), key("e1", 2), key("e1", 3), key("e2", 7)]
    );
    assert_eq!(unanalysed(None, 1).await, [key("e1", 1)], "limited");
    assert_eq!(
        unanalysed(Some(("e1", 2)), 100).await,
        [key("e1", 3), key("e2", 7)],
        "after a device and seq"
    );
    // The chunk as stored, for the analysis to decode.
    let c = &s.ecg_unanalysed(None, 1).await.expect("unanalysed")[0].chunk;
    assert_eq!(
        (c.t0_ms, c.fs_hz, c.n_samples, c.samples.len()),
        (0, 250, 500, 256)
    );

    // Moved in a pass's transaction, and only if it commits.
    let refused = refused_pass(
        s,
        p,
        &PassProgress {
            observation_id: None,
            ecg: vec![key("e1", 3), key("e2", 7)],
        },
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(unanalysed(None, 100).await.len(), 4);
    s.score_and_fire(
        &[],
        &[],
        t(8, 4),
        &PassProgress {
            observation_id: None,
            // A patch named twice in a pass counts at its highest.
            ecg: vec![key("e1", 2), key("e1", 1)],
        },
    )
    .await
    .expect("progress alone");
    assert_eq!(unanalysed(None, 100).await, [key("e1", 3), key("e2", 7)]);
    assert_eq!(s.worker_progress().await.expect("progress"), 0, "untouched");
    // Never down, and a new chunk above the progress is unanalysed.
    s.set_worker_progress(&PassProgress {
        observation_id: None,
        ecg: vec![key("e1", 1)],
    })
    .await
    .expect("set");
    assert_eq!(unanalysed(None, 100).await, [key("e1", 3), key("e2", 7)]);
    s.set_worker_progress(&PassProgress {
        observation_id: None,
        ecg: vec![key("e1", 3), key("e2", 7)],
    })
    .await
    .expect("set");
    assert!(unanalysed(None, 100).await.is_empty());
    s.store_ecg_batch(&[ecg_chunk("e2", 8, p, 2_000)])
        .await
        .expect("ecg");
    assert_eq!(unanalysed(None, 100).await, [key("e2", 8)]);
}

async fn discharge_resolves_the_live_alerts_and_nothing_new_is_raised(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let other = admit(s, w, "Bob").await;
    let fire =
        |patient, rule: &str, at| s.alert_fire(firing(patient, w, rule, Severity::High, at), at);
    let (open, _) = fire(p, "news2", t(8, 0)).await.expect("fire");
    let (acked, _) = fire(p, "spo2-urgent", t(8, 1)).await.expect("fire");
    s.alert_act(acked.id, AlertAction::Acknowledge, "nurse_a", t(8, 2))
        .await
        .expect("ack");
    let (done_before, _) = fire(p, "device-offline:ox-1", t(8, 3)).await.expect("fire");
    s.alert_act(
        done_before.id,
        AlertAction::Resolve {
            outcome: "reviewed-no-action".into(),
            note: String::new(),
        },
        "nurse_a",
        t(8, 4),
    )
    .await
    .expect("resolve");
    let (bobs, _) = fire(other, "news2", t(8, 5)).await.expect("fire");

    let done = s
        .patient_discharge(p, "admin_a", t(9, 0))
        .await
        .expect("discharge");
    let ids: Vec<i64> = done.resolved.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![open.id, acked.id], "the live ones, by id");
    for a in &done.resolved {
        assert_eq!(
            (a.status, a.outcome.as_deref(), a.escalate_at, a.resolved_at),
            (AlertStatus::Resolved, Some(DISCHARGED), None, Some(t(9, 0)))
        );
        // The stored word itself (a dashboard and the sync compare with it).
        assert_eq!(DISCHARGED, "discharged");
        let last = s
            .alert_events(a.id)
            .await
            .expect("events")
            .pop()
            .expect("event");
        assert_eq!(
            (
                last.at,
                last.actor.as_str(),
                last.action.as_str(),
                &last.detail["outcome"]
            ),
            (
                t(9, 0),
                "admin_a",
                "resolved",
                &serde_json::json!(DISCHARGED)
            )
        );
    }
    // The one resolved before keeps its own outcome; the other patient's
    // alert is untouched.
    let before = s
        .alert_get(done_before.id)
        .await
        .expect("get")
        .expect("alert");
    assert_eq!(before.outcome.as_deref(), Some("reviewed-no-action"));
    let bob = s.alert_get(bobs.id).await.expect("get").expect("alert");
    assert_eq!(bob.status, AlertStatus::Open);
    assert!(
        s.alerts_due(t(23, 0))
            .await
            .expect("due")
            .iter()
            .all(|a| a.patient_id != p),
        "nothing of the discharged patient escalates"
    );

    // A firing computed before the discharge and stored after it raises
    // nothing, alone or in a pass; the other patient's still does.
    assert!(matches!(
        fire(p, "news2", t(9, 1)).await,
        Err(StoreError::NotFound(_))
    ));
    let out = s
        .score_and_fire(
            &[],
            &[
                BatchFiring {
                    firing: firing(p, w, "spo2-urgent", Severity::High, t(9, 2)),
                    update_only: false,
                },
                BatchFiring {
                    firing: firing(other, w, "spo2-urgent", Severity::High, t(9, 2)),
                    update_only: false,
                },
            ],
            t(9, 2),
            &PassProgress::default(),
        )
        .await
        .expect("pass");
    assert!(out[0].is_none(), "nothing raised for a discharged patient");
    assert_eq!(
        out[1].as_ref().map(|(_, o)| *o),
        Some(FiringOutcome::Raised)
    );
    assert!(
        s.alerts_list(&[w], None, Some(p))
            .await
            .expect("list")
            .iter()
            .all(|a| a.status == AlertStatus::Resolved)
    );
}

async fn the_alert_trail_is_read_in_order_and_the_webhook_progress_starts_at_its_end(
    s: &dyn Store,
) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let (a, _) = s
        .alert_fire(firing(p, w, "news2", Severity::Medium, t(8, 0)), t(8, 0))
        .await
        .expect("fire");
    // The first call records the newest event: the history is not the webhook's.
    let start = s.notify_progress().await.expect("progress");
    let trail = s.alert_events_after(0, 100).await.expect("trail");
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(start, trail[0].id);
    assert_eq!(
        (
            trail[0].alert_id,
            trail[0].action.as_str(),
            trail[0].actor.as_str()
        ),
        (a.id, "raised", "system")
    );
    s.alert_act(a.id, AlertAction::Acknowledge, "nurse_a", t(8, 5))
        .await
        .expect("ack");
    s.alert_act(a.id, AlertAction::Escalate, "nurse_b", t(8, 6))
        .await
        .expect("escalate");
    let after = s.alert_events_after(start, 100).await.expect("trail");
    assert_eq!(
        after
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.at))
            .collect::<Vec<_>>(),
        [
            ("acknowledged", "nurse_a", t(8, 5)),
            ("escalated", "nurse_b", t(8, 6))
        ]
    );
    assert!(after[0].id < after[1].id);
    assert_eq!(
        s.alert_events_after(start, 1).await.expect("trail").len(),
        1,
        "limited"
    );
    // Set, it is kept; a second first call does not move it.
    s.set_notify_progress(after[0].id).await.expect("set");
    assert_eq!(s.notify_progress().await.expect("progress"), after[0].id);
    // It only moves forward: an instance that lost the lease mid-post
    // cannot take it back.
    s.set_notify_progress(start).await.expect("set");
    assert_eq!(s.notify_progress().await.expect("progress"), after[0].id);
}

async fn the_webhook_lease_is_one_instances_until_it_lapses_or_is_given_up(s: &dyn Store) {
    use std::time::Duration;
    s.notify_progress().await.expect("progress");
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(300);
    assert!(
        s.notify_lease("a", long).await.expect("lease"),
        "free: taken"
    );
    assert!(!s.notify_lease("b", long).await.expect("lease"), "a's");
    assert!(s.notify_lease("a", short).await.expect("lease"), "renewed");
    assert!(
        !s.notify_lease("b", long).await.expect("lease"),
        "not lapsed yet"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        s.notify_lease("b", long).await.expect("lease"),
        "lapsed: b's"
    );
    assert!(!s.notify_lease("a", long).await.expect("lease"), "b's now");
    // Given up by someone who does not hold it: nothing changes.
    s.notify_release("a").await.expect("release");
    assert!(
        !s.notify_lease("a", long).await.expect("lease"),
        "still b's"
    );
    // Given up by its holder: free at once.
    s.notify_release("b").await.expect("release");
    assert!(
        s.notify_lease("a", long).await.expect("lease"),
        "free again"
    );
}

async fn alert_lifecycle_is_audited_and_guarded(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let (a, _) = s
        .alert_fire(firing(p, w, "news2", Severity::Medium, t(8, 0)), t(8, 0))
        .await
        .expect("fire");

    let ack = s
        .alert_act(a.id, AlertAction::Acknowledge, "nurse_a", t(8, 5))
        .await
        .expect("ack");
    assert_eq!(
        (ack.status, ack.escalate_at, ack.updated_at),
        (AlertStatus::Acknowledged, None, t(8, 5))
    );
    assert!(matches!(
        s.alert_act(a.id, AlertAction::Acknowledge, "nurse_b", t(8, 6))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let esc = s
        .alert_act(a.id, AlertAction::Escalate, "nurse_a", t(8, 10))
        .await
        .expect("escalate");
    assert_eq!(esc.status, AlertStatus::Escalated);
    assert!(matches!(
        s.alert_act(a.id, AlertAction::Escalate, "nurse_a", t(8, 11))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let resolve = AlertAction::Resolve {
        outcome: "reviewed".into(),
        note: "stable on review".into(),
    };
    let res = s
        .alert_act(a.id, resolve.clone(), "dr_b", t(8, 20))
        .await
        .expect("resolve");
    assert_eq!(
        (
            res.status,
            res.resolved_at,
            res.outcome.as_deref(),
            res.note.as_deref()
        ),
        (
            AlertStatus::Resolved,
            Some(t(8, 20)),
            Some("reviewed"),
            Some("stable on review")
        )
    );
    assert!(matches!(
        s.alert_act(a.id, resolve.clone(), "dr_b", t(8, 21)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.alert_act(a.id, AlertAction::Acknowledge, "n", t(8, 21))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.alert_act(999_999, AlertAction::Acknowledge, "n", t(8, 21))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.alert_get(a.id).await.expect("get"), Some(res.clone()));
    assert_eq!(s.alert_get(999_999).await.expect("get"), None);

    let events = s.alert_events(a.id).await.expect("events");
    let trail: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.at))
        .collect();
    assert_eq!(
        trail,
        [
            ("raised", "system", t(8, 0)),
            ("acknowledged", "nurse_a", t(8, 5)),
            ("escalated", "nurse_a", t(8, 10)),
            ("resolved", "dr_b", t(8, 20))
        ]
    );
    assert_eq!(
        events[3].detail,
        serde_json::json!({"outcome": "reviewed", "note": "stable on review"})
    );
    assert!(s.alert_events(999_999).await.expect("events").is_empty());
    assert_eq!(s.stats().await.expect("stats").alerts_open, 0);
}

async fn alerts_list_filters_and_due_escalations(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let a = admit(s, w1, "Ann").await;
    let b = admit(s, w1, "Bob").await;
    let c = admit(s, w2, "Cat").await;
    let (x, _) = s
        .alert_fire(firing(a, w1, "news2", Severity::High, t(8, 0)), t(8, 0))
        .await
        .expect("fire");
    let (y, _) = s
        .alert_fire(firing(b, w1, "news2", Severity::Low, t(8, 10)), t(8, 10))
        .await
        .expect("fire");
    let (z, _) = s
        .alert_fire(
            AlertFiring {
                escalate_at: None,
                ..firing(c, w2, "news2", Severity::Low, t(8, 0))
            },
            t(8, 0),
        )
        .await
        .expect("fire");
    s.alert_act(y.id, AlertAction::Acknowledge, "n", t(8, 11))
        .await
        .expect("ack");

    let ids = |v: Vec<AlertRow>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.alerts_list(&[w1], None, None).await.expect("list")),
        [x.id, y.id]
    );
    assert_eq!(
        ids(s.alerts_list(&[w2, w1], None, None).await.expect("list")),
        [z.id, x.id, y.id],
        "ward order"
    );
    assert_eq!(
        ids(s
            .alerts_list(&[w1], Some(AlertStatus::Open), None)
            .await
            .expect("list")),
        [x.id]
    );
    assert_eq!(
        ids(s
            .alerts_list(&[w1], Some(AlertStatus::Acknowledged), None)
            .await
            .expect("list")),
        [y.id]
    );
    assert_eq!(
        ids(s.alerts_list(&[w1], None, Some(b)).await.expect("list")),
        [y.id]
    );
    assert!(
        s.alerts_list(&[w1], Some(AlertStatus::Open), Some(c))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        s.alerts_list(&[], None, None)
            .await
            .expect("list")
            .is_empty()
    );

    // x escalates at 08:30; y was acknowledged (no timer); z never escalates.
    assert!(s.alerts_due(t(8, 29)).await.expect("due").is_empty());
    assert_eq!(
        ids(s.alerts_due(t(8, 30)).await.expect("due")),
        [x.id],
        "due at the escalation time itself"
    );
    assert_eq!(ids(s.alerts_due(t(23, 0)).await.expect("due")), [x.id]);
    s.alert_act(x.id, AlertAction::Escalate, "system", t(8, 30))
        .await
        .expect("escalate");
    assert!(s.alerts_due(t(23, 0)).await.expect("due").is_empty());
    assert_eq!(s.stats().await.expect("stats").alerts_open, 3);
}

/// The handover's list: resolved alerts on the asked wards from a time on
/// (the edge included), the latest resolution first across wards, each with
/// its patient and who resolved it; live alerts never, a discharged
/// patient's alerts under the discharging user.
async fn resolved_alerts_are_listed_by_when_they_were_resolved(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let w2 = ward(s, "W2").await;
    let ann = admit(s, w1, "Ann").await;
    let bob = admit(s, w1, "Bob").await;
    let cat = admit(s, w2, "Cat").await;
    let fire = |p: i64, w: i64, rule: &'static str| async move {
        s.alert_fire(firing(p, w, rule, Severity::Medium, t(8, 0)), t(8, 0))
            .await
            .expect("fire")
            .0
            .id
    };
    let x = fire(ann, w1, "news2").await;
    let live = fire(ann, w1, "spo2-urgent").await;
    let y = fire(bob, w1, "news2").await;
    let z = fire(cat, w2, "news2").await;
    let v = fire(bob, w1, "spo2-urgent").await;
    let resolve = |id: i64, who: &'static str, at: DateTime<Utc>| async move {
        let outcome = AlertAction::Resolve {
            outcome: "advice-given".into(),
            note: format!("called by {who}"),
        };
        s.alert_act(id, outcome, who, at).await.expect("resolve");
    };
    resolve(x, "nurse1", t(9, 0)).await;
    resolve(z, "nurse3", t(9, 30)).await;
    resolve(y, "nurse2", t(10, 0)).await;
    s.patient_discharge(bob, "admin1", t(11, 0))
        .await
        .expect("discharge");

    let got = |v: Vec<ResolvedAlert>| {
        v.into_iter()
            .map(|r| (r.alert.id, r.resolved_by, r.patient_name))
            .collect::<Vec<_>>()
    };
    let row = |id: i64, by: &str, name: &str| (id, by.to_string(), name.to_string());
    assert_eq!(
        got(s.alerts_resolved_since(&[w1], t(9, 0)).await.expect("list")),
        [
            row(v, "admin1", "Bob"),
            row(y, "nurse2", "Bob"),
            row(x, "nurse1", "Ann")
        ],
        "the latest first, the edge included, the live alert {live} left out"
    );
    assert_eq!(
        got(s
            .alerts_resolved_since(&[w1, w2], t(9, 1))
            .await
            .expect("list")),
        [
            row(v, "admin1", "Bob"),
            row(y, "nurse2", "Bob"),
            row(z, "nurse3", "Cat")
        ],
        "across wards by time"
    );
    let one = s
        .alerts_resolved_since(&[w1], t(10, 30))
        .await
        .expect("list");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].alert.outcome.as_deref(), Some("discharged"));
    assert_eq!(one[0].alert.resolved_at, Some(t(11, 0)));
    assert_eq!(one[0].nhs_number, nhs::test_range_for("Bob"));
    let x_row = s.alerts_resolved_since(&[w1], t(9, 0)).await.expect("list");
    assert_eq!(x_row[2].alert.note.as_deref(), Some("called by nurse1"));
    assert!(
        s.alerts_resolved_since(&[w2], t(9, 31))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        s.alerts_resolved_since(&[], t(0, 0))
            .await
            .expect("list")
            .is_empty()
    );
}

/// A patient's notes: each as written, with who and when (to the
/// millisecond), the newest first, and only that patient's.
async fn notes_are_kept_per_patient_newest_first(s: &dyn Store) {
    let w1 = ward(s, "W1").await;
    let ann = admit(s, w1, "Ann").await;
    let bob = admit(s, w1, "Bob").await;
    assert!(s.notes_list(ann).await.expect("list").is_empty());
    let at = t(9, 0) + Duration::milliseconds(1234);
    let first = s
        .note_add(ann, "nurse1", "Phoned: breathless on stairs only.", at)
        .await
        .expect("add");
    assert_eq!(
        (first.patient_id, first.at, first.author.as_str()),
        (ann, at.trunc_subsecs(3), "nurse1")
    );
    s.note_add(bob, "nurse1", "No answer; try at 14:00.", t(9, 5))
        .await
        .expect("add");
    let second = s
        .note_add(
            ann,
            "dr-lee",
            "Plan: rescue pack if sputum turns green.\nReview tomorrow.",
            t(9, 10),
        )
        .await
        .expect("add");
    assert!(second.id > first.id);
    let listed = s.notes_list(ann).await.expect("list");
    assert_eq!(listed, [second.clone(), first.clone()]);
    assert_eq!(
        listed[0].text,
        "Plan: rescue pack if sputum turns green.\nReview tomorrow."
    );
    assert_eq!(s.notes_list(bob).await.expect("list").len(), 1);

    // The handover's: a ward's notes from a time on (the edge included),
    // the newest first across wards, each with its patient.
    let w2 = ward(s, "W2").await;
    let cat = admit(s, w2, "Cat").await;
    s.note_add(cat, "nurse2", "Seen at home.", t(9, 7))
        .await
        .expect("add");
    let got = |v: Vec<WardNote>| {
        v.into_iter()
            .map(|n| (n.note.at, n.patient_name, n.ward_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        got(s.notes_since(&[w1], t(9, 5)).await.expect("since")),
        [(t(9, 10), "Ann".into(), w1), (t(9, 5), "Bob".into(), w1)]
    );
    assert_eq!(
        got(s.notes_since(&[w1, w2], t(9, 6)).await.expect("since")),
        [(t(9, 10), "Ann".into(), w1), (t(9, 7), "Cat".into(), w2)]
    );
    let bobs = s.notes_since(&[w1], t(9, 5)).await.expect("since");
    assert_eq!(bobs[1].nhs_number, nhs::test_range_for("Bob"));
    assert_eq!(bobs[0].note, second);
    assert!(
        s.notes_since(&[w2], t(9, 8))
            .await
            .expect("since")
            .is_empty()
    );
}

// --- audit -------------------------------------------------------------------

async fn audit_trail_filters_newest_first(s: &dyn Store) {
    let entry = |m: u32, user_id: Option<i64>, action: &str, patient_id: Option<i64>| AuditEntry {
        at: t(9, m),
        user_id,
        username: user_id.map_or("anonymous".to_string(), |u| format!("user{u}")),
        action: action.into(),
        patient_id,
        detail: serde_json::json!({"route": "/api/v1/patients", "n": m}),
        addr: user_id.map(|_| "127.0.0.1".to_string()),
    };
    let all = [
        entry(0, None, "login.failed", None),
        entry(1, Some(1), "patient.read", Some(10)),
        entry(2, Some(2), "patient.read", Some(10)),
        entry(3, Some(1), "alert.acknowledge", Some(11)),
    ];
    for e in &all {
        s.audit_append(e.clone()).await.expect("append");
    }
    let got = s.audit_query(AuditQuery::default()).await.expect("query");
    assert_eq!(
        got,
        all.iter().rev().cloned().collect::<Vec<_>>(),
        "newest first, every field kept"
    );
    let actions = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.at).collect::<Vec<_>>();
    let q = AuditQuery {
        patient_id: Some(10),
        ..Default::default()
    };
    assert_eq!(
        actions(s.audit_query(q).await.expect("query")),
        [t(9, 2), t(9, 1)]
    );
    let q = AuditQuery {
        user_id: Some(1),
        ..Default::default()
    };
    assert_eq!(
        actions(s.audit_query(q).await.expect("query")),
        [t(9, 3), t(9, 1)]
    );
    let q = AuditQuery {
        from: Some(t(9, 1)),
        to: Some(t(9, 2)),
        ..Default::default()
    };
    assert_eq!(
        actions(s.audit_query(q).await.expect("query")),
        [t(9, 2), t(9, 1)],
        "both edges inclusive"
    );
    let q = AuditQuery {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(
        actions(s.audit_query(q).await.expect("query")),
        [t(9, 3), t(9, 2)]
    );
    let q = AuditQuery {
        limit: Some(0),
        ..Default::default()
    };
    assert!(s.audit_query(q).await.expect("query").is_empty());
    let q = AuditQuery {
        user_id: Some(1),
        patient_id: Some(10),
        ..Default::default()
    };
    assert_eq!(actions(s.audit_query(q).await.expect("query")), [t(9, 1)]);
}

// --- connect -----------------------------------------------------------------

#[tokio::test]
async fn connect_opens_the_backend_named_by_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = vigil_store::connect(&format!("sqlite://{}", dir.path().join("c.db").display()))
        .await
        .expect("sqlite url");
    sqlite.ping().await.expect("ping");
    assert!(matches!(
        vigil_store::connect("mysql://localhost/vigil").await,
        Err(StoreError::Config(_))
    ));
    assert!(matches!(
        PgStore::connect("sqlite://x.db").await,
        Err(StoreError::Config(_))
    ));
    let Some(url) = support::pg::fresh_database().await else {
        return;
    };
    let pg = vigil_store::connect(&url).await.expect("postgres url");
    pg.ping().await.expect("ping");
    assert_eq!(pg.stats().await.expect("migrated"), Stats::default());
    let pg2 = vigil_store::connect(&url.replacen("postgres://", "postgresql://", 1))
        .await
        .expect("postgresql url");
    pg2.ping().await.expect("ping");
}

/// SQLite: the WAL is copied back into the database file by the store's
/// own background task, not by the commits (which would do it while
/// holding the write lock, and only past `wal_autocheckpoint` pages).
/// About 2 MB of ECG chunks stay under the 1,000-page default and the
/// store's backstop alike, so without the task the database file would
/// not grow until some later commit crossed the backstop.
#[tokio::test]
async fn sqlite_checkpoints_the_wal_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt.db");
    let s = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    let w = ward(&s, "W").await;
    let p = admit(&s, w, "Ann").await;
    let size = || std::fs::metadata(&path).expect("db file").len();
    let before = size();
    let blob: Vec<u8> = (0..2_000u32).map(|i| (i % 251) as u8).collect();
    for b in 0..4u32 {
        let batch: Vec<NewEcgChunk> = (0..250u32)
            .map(|i| NewEcgChunk {
                samples: blob.clone(),
                ..ecg_chunk("ecg-1", b * 250 + i, p, i64::from(b * 250 + i) * 1000)
            })
            .collect();
        s.store_ecg_batch(&batch).await.expect("store");
    }
    let wal = std::fs::metadata(dir.path().join("ckpt.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        wal >= 2_000_000,
        "the chunks went to the WAL first ({wal} bytes)"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + 1_500_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "database file still {} bytes (was {before}): no checkpoint ran",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // And what was copied is what was written.
    assert_eq!(
        s.ecg_range(p, 0, 1_000_000).await.expect("read").0.len(),
        1_000
    );
}

async fn history_retention_deletes_only_what_is_older(s: &dyn Store) {
    let w = ward(s, "W").await;
    let p = admit(s, w, "Ann").await;
    let spo2 = |v: f64| NewObservation {
        code: "spo2".into(),
        value: ObsValue::Number(v),
        unit: Some("%".into()),
    };
    s.store_obs_batch(&[
        msg("d1", 1, p, t(8, 0), vec![spo2(95.0)]),
        msg("d1", 2, p, t(10, 0), vec![spo2(96.0)]),
    ])
    .await
    .expect("batch");
    for (at, total) in [(t(8, 0), 1), (t(10, 0), 2)] {
        let sc = NewScore {
            patient_id: p,
            scored_at: at,
            computed_at: at,
            total: Some(total),
            risk: Some("low".into()),
            partial: false,
            detail: serde_json::json!({}),
            obs_ids: vec![],
        };
        s.score_insert(sc).await.expect("score");
    }
    assert_eq!(
        s.delete_history_before(HistoryKind::Observations, t(9, 0))
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        s.delete_history_before(HistoryKind::Scores, t(9, 0))
            .await
            .expect("delete"),
        1
    );
    let left = s
        .observations(ObservationQuery {
            patient_id: p,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(
        s.scores(p, None, None)
            .await
            .expect("scores")
            .iter()
            .map(|r| r.total)
            .collect::<Vec<_>>(),
        [Some(2)]
    );
    assert_eq!(s.stats().await.expect("stats").obs_messages, 1);
}

// --- upgrades ----------------------------------------------------------------

/// A migrator with the repository's migrations up to `version` only: the
/// schema a database written by an older Vigil has.
fn migrations_up_to(mut m: sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
    m.migrations = m
        .migrations
        .iter()
        .filter(|x| x.version <= version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    m
}

/// The ECG history of a database from before migration 0013 counts as
/// analysed (the daemon that wrote it analysed it): upgrading must not
/// make the next start analyse it all again (hours of work, every heart
/// rate derived and stored twice). Chunks stored after the upgrade are
/// unanalysed as usual.
async fn ecg_history_from_before_0013_counts_as_analysed(url: &str) {
    let sql = [
        "INSERT INTO wards (name, created_at) VALUES ('W', '2026-11-22T06:00:00Z')",
        "INSERT INTO patients (ward_id, name, nhs_number, created_at) VALUES (1, 'Ann', '9434765919', '2026-11-22T06:00:00Z')",
        "INSERT INTO devices (id, kind, mqtt_username, secret_hash, patient_id, created_at) VALUES ('e1', 'ecg-patch', 'u-e1', 'h', 1, '2026-11-22T06:00:00Z')",
    ];
    let chunk = "INSERT INTO ecg_chunks (device_id, seq, patient_id, t0_ms, fs_hz, uv_per_count, n_samples, encoding, samples, received_at) VALUES ('e1', $1, 1, 0, 250, 2.5, 1, 'x', $2, '2026-11-22T06:00:00Z')";
    // The same on either backend's own pool type.
    macro_rules! written_by_0012 {
        ($pool:expr, $migrator:expr) => {{
            let pool = $pool;
            migrations_up_to($migrator, 12)
                .run(&pool)
                .await
                .expect("migrate to 0012");
            for q in sql {
                sqlx::query(q).execute(&pool).await.expect(q);
            }
            for seq in [1i64, 2, 3] {
                sqlx::query(chunk)
                    .bind(seq)
                    .bind(vec![0u8])
                    .execute(&pool)
                    .await
                    .expect("chunk");
            }
            pool.close().await;
        }};
    }
    if url.starts_with("sqlite:") {
        written_by_0012!(
            sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                .await
                .expect("sqlite"),
            sqlx::migrate!("../../migrations/sqlite")
        );
    } else {
        written_by_0012!(
            sqlx::PgPool::connect(url).await.expect("postgres"),
            sqlx::migrate!("../../migrations/postgres")
        );
    }
    let s = vigil_store::connect(url).await.expect("upgrade");
    assert!(
        s.ecg_unanalysed(None, 10)
            .await
            .expect("unanalysed")
            .is_empty(),
        "the history before the upgrade counts as analysed"
    );
    s.store_ecg_batch(&[ecg_chunk("e1", 4, 1, 3_000)])
        .await
        .expect("ecg");
    let after: Vec<u32> = s
        .ecg_unanalysed(None, 10)
        .await
        .expect("unanalysed")
        .into_iter()
        .map(|c| c.chunk.seq)
        .collect();
    assert_eq!(after, [4]);
}

#[tokio::test]
async fn ecg_history_from_before_0013_counts_as_analysed_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    ecg_history_from_before_0013_counts_as_analysed(&format!(
        "sqlite://{}",
        dir.path().join("old.db").display()
    ))
    .await;
}

#[tokio::test]
async fn ecg_history_from_before_0013_counts_as_analysed_postgres() {
    if let Some(url) = support::pg::fresh_database().await {
        ecg_history_from_before_0013_counts_as_analysed(&url).await;
    }
}

async fn a_logout_token_is_taken_once_until_it_expires_and_the_memory_is_bounded(s: &dyn Store) {
    let token = |jti: &'static str, expires_at| SsoLogout {
        jti,
        expires_at,
        sub: Some("someone"),
        sid: None,
        remembered_at_most: 2,
    };
    let take = |jti, expires_at, now| async move {
        s.sso_logout(&token(jti, expires_at), now)
            .await
            .expect("sso_logout")
    };
    // No session of that subject: a token taken ends none.
    assert_eq!(
        take("a", t(9, 0), t(8, 0)).await,
        SsoLogoutOutcome::Ended(vec![])
    );
    assert_eq!(
        take("a", t(9, 0), t(8, 1)).await,
        SsoLogoutOutcome::TakenAlready
    );
    assert_eq!(
        take("b", t(10, 0), t(8, 2)).await,
        SsoLogoutOutcome::Ended(vec![])
    );
    assert_eq!(
        take("c", t(10, 0), t(8, 3)).await,
        SsoLogoutOutcome::TooMany
    );
    // Once "a" has expired it is forgotten, and makes room.
    assert_eq!(
        take("c", t(10, 0), t(9, 1)).await,
        SsoLogoutOutcome::Ended(vec![])
    );
    assert_eq!(
        take("b", t(10, 0), t(9, 2)).await,
        SsoLogoutOutcome::TakenAlready
    );
    assert_eq!(
        take("a", t(11, 0), t(9, 3)).await,
        SsoLogoutOutcome::TooMany
    );
}
