//! One suite, both stores: every behaviour the orchestrator relies on, run against
//! the embedded SQLite file and against a real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use pqescape_orchestrator::domain::{ConsumerState, Labels, Role};
use pqescape_orchestrator::store::*;
use support::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let map: BTreeMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Labels::new(map).unwrap()
}

fn token(id: &str, consumer: &str, expires_at: i64) -> EnrollmentTokenRow {
    EnrollmentTokenRow {
        id: id.into(),
        consumer_id: consumer.into(),
        verifier: vec![7; 32],
        created_at: 100,
        expires_at,
    }
}

async fn register(store: &dyn Store, n: u32, pairs: &[(&str, &str)]) -> String {
    let id = format!("00000000-0000-4000-8000-{n:012}");
    let c = NewConsumer {
        id: id.clone(),
        name: format!("host-{n:03}"),
        labels: labels(pairs),
        now: 100,
    };
    store.insert_consumer(&c, &token(&format!("tok{n}"), &id, 1_000)).await.unwrap();
    id
}

/// Campaign `id` in `state`, planned by `plan` (a campaign request's JSON) at 1,000.
fn campaign(
    id: &str,
    state: pqescape_orchestrator::campaign::CampaignState,
    plan: serde_json::Value,
) -> pqescape_orchestrator::campaign::Campaign {
    use pqescape_orchestrator::campaign::{Campaign, CampaignRequest};
    let req: CampaignRequest = serde_json::from_value(plan).unwrap();
    Campaign {
        id: id.into(),
        spec: req.validate(1_000).unwrap(),
        state,
        manifest_digest: None,
        created_by: "op".into(),
        created_at: 1_000,
        updated_at: 1_000,
        armed_at: None,
        fired_at: None,
        finished_at: None,
    }
}

async fn consumers_register_list_and_page(store: Arc<dyn Store>) {
    for n in 0..7 {
        let env = if n % 2 == 0 { "prod" } else { "test" };
        register(store.as_ref(), n, &[("env", env), ("region", "eu")]).await;
    }
    let c = store.consumer("00000000-0000-4000-8000-000000000000").await.unwrap().unwrap();
    assert_eq!(
        (c.state, c.key_id, c.suite.as_str()),
        (ConsumerState::PendingEnrollment, 0, "classical")
    );
    assert_eq!(c.labels, labels(&[("env", "prod"), ("region", "eu")]));

    // Pages of 3 over the 4 prod consumers: 3, then 1, in id order, no duplicates.
    let selector = "env=prod,region=eu".parse().unwrap();
    let mut q = ConsumerQuery { selector, limit: 3, ..ConsumerQuery::default() };
    let first = store.list_consumers(&q).await.unwrap();
    assert_eq!(first.items.len(), 3);
    q.after = first.next.clone();
    let second = store.list_consumers(&q).await.unwrap();
    assert_eq!((second.items.len(), second.next.clone()), (1, None));
    let names: Vec<_> = first.items.iter().chain(&second.items).map(|c| c.name.clone()).collect();
    assert_eq!(names, ["host-000", "host-002", "host-004", "host-006"]);

    let by_name = ConsumerQuery {
        name_contains: Some("ST-00".into()),
        limit: 50,
        ..ConsumerQuery::default()
    };
    assert_eq!(store.list_consumers(&by_name).await.unwrap().items.len(), 7);
    let wildcard =
        ConsumerQuery { name_contains: Some("%".into()), limit: 50, ..ConsumerQuery::default() };
    assert!(store.list_consumers(&wildcard).await.unwrap().items.is_empty(), "% is literal");
}

async fn names_are_unique(store: Arc<dyn Store>) {
    register(store.as_ref(), 1, &[]).await;
    let dup = NewConsumer {
        id: "00000000-0000-4000-8000-999999999999".into(),
        name: "host-001".into(),
        labels: Labels::default(),
        now: 1,
    };
    let err = store.insert_consumer(&dup, &token("other", &dup.id, 1_000)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store.consumer(&dup.id).await.unwrap().is_none(), "nothing half-written");
}

async fn labels_and_revocation(store: Arc<dyn Store>) {
    let id = register(store.as_ref(), 1, &[("env", "test")]).await;
    let updated = store.set_labels(&id, &labels(&[("env", "prod")]), 200).await.unwrap().unwrap();
    assert_eq!((updated.labels.clone(), updated.updated_at), (labels(&[("env", "prod")]), 200));
    let q = ConsumerQuery {
        selector: "env=test".parse().unwrap(),
        limit: 10,
        ..ConsumerQuery::default()
    };
    assert!(store.list_consumers(&q).await.unwrap().items.is_empty(), "old labels are gone");

    let revoked = store.revoke_consumer(&id, 300).await.unwrap().unwrap();
    assert_eq!(revoked.state, ConsumerState::Revoked);
    assert!(
        store.live_enrollment_token("tok1", 301).await.unwrap().is_none(),
        "tokens die with it"
    );
    assert!(
        store.revoke_consumer("00000000-0000-4000-8000-999999999999", 1).await.unwrap().is_none()
    );
}

async fn enrollment_tokens_are_one_time_and_expire(store: Arc<dyn Store>) {
    let id = register(store.as_ref(), 1, &[]).await;
    assert!(store.begin_enrollment("tok1", 1_000, b"late").await.unwrap().is_none(), "expired");
    let row = store.begin_enrollment("tok1", 500, b"session").await.unwrap().unwrap();
    assert_eq!(row.consumer_id, id);
    assert_eq!(store.enrollment_session("tok1", 500).await.unwrap().unwrap(), b"session");

    let psk = SealedPsk { key_id: 1, sealed: vec![9; 60] };
    assert!(store.complete_enrollment("tok1", &psk, 501).await.unwrap());
    assert!(!store.complete_enrollment("tok1", &psk, 502).await.unwrap(), "used once");
    assert!(store.begin_enrollment("tok1", 503, b"again").await.unwrap().is_none());
    let c = store.consumer(&id).await.unwrap().unwrap();
    assert_eq!((c.state, c.key_id), (ConsumerState::Enrolled, 1));
    assert_eq!(store.consumer_psk(&id).await.unwrap().unwrap().sealed, vec![9; 60]);

    store.insert_enrollment_token(&token("tok-b", &id, 2_000)).await.unwrap();
    assert!(store.live_enrollment_token("tok-b", 1_999).await.unwrap().is_some());
    assert!(store.live_enrollment_token("tok-b", 2_000).await.unwrap().is_none());
}

async fn api_tokens(store: Arc<dyn Store>) {
    let t = ApiToken {
        id: "t1".into(),
        name: "ci".into(),
        role: Role::Operator,
        created_at: 5,
        revoked_at: None,
    };
    store.insert_api_token(&t, &[1; 32]).await.unwrap();
    assert_eq!(store.api_token_by_hash(&[1; 32]).await.unwrap(), Some(t.clone()));
    assert!(store.api_token_by_hash(&[2; 32]).await.unwrap().is_none());
    assert!(store.revoke_api_token("t1", 6).await.unwrap());
    assert!(!store.revoke_api_token("t1", 7).await.unwrap());
    assert!(
        store.api_token_by_hash(&[1; 32]).await.unwrap().is_none(),
        "revoked tokens do not authenticate"
    );
    assert_eq!(store.list_api_tokens().await.unwrap()[0].revoked_at, Some(6));
}

async fn audit_chain_is_appended_in_order(store: Arc<dyn Store>) {
    let mut handles = Vec::new();
    for n in 0..20 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let e = NewAuditEntry {
                at: n,
                actor: "a".into(),
                action: "x.y".into(),
                target: n.to_string(),
                detail: "{}".into(),
            };
            store.append_audit(&e).await.unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let entries = store.list_audit(0, 100).await.unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    let (report, _) = pqescape_orchestrator::audit::verify_chain(
        &entries,
        pqescape_orchestrator::audit::Checkpoint::START,
    );
    assert!(report.valid, "{report:?}");
    assert_eq!(store.list_audit(18, 100).await.unwrap().len(), 2);
}

async fn settings_and_signing_key_are_set_once(store: Arc<dyn Store>) {
    assert_eq!(store.init_setting("k", b"first").await.unwrap(), b"first");
    assert_eq!(store.init_setting("k", b"second").await.unwrap(), b"first");
    let key =
        |id: &str| StoredSigningKey { id: id.into(), seed_sealed: vec![1], public_key: vec![2] };
    assert_eq!(store.init_signing_key(&key("a"), 1).await.unwrap().id, "a");
    assert_eq!(store.init_signing_key(&key("b"), 2).await.unwrap().id, "a");
}

async fn campaigns_move_only_along_their_rules(store: Arc<dyn Store>) {
    use pqescape_orchestrator::campaign::CampaignState as S;
    let c = campaign(
        "c1",
        S::Draft,
        serde_json::json!({
            "name": "c", "selector": "env=prod", "target_suite": "x25519-mlkem1024", "deadline": 5_000,
            "waves": [5, 100], "drill": true, "directives": "{\"reload\":true}"
        }),
    );
    store.insert_campaign(&c).await.unwrap();
    assert_eq!(store.campaign("c1").await.unwrap().unwrap(), c, "round trip");

    assert!(
        store
            .transition_campaign("c1", &[S::Armed], S::Running, 1_100, None, None)
            .await
            .unwrap()
            .is_none()
    );
    let armed = store
        .transition_campaign("c1", &[S::Draft], S::Armed, 1_200, Some(b"manifest"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((armed.state, armed.armed_at), (S::Armed, Some(1_200)));
    assert!(armed.manifest_digest.is_some());
    assert_eq!(store.campaign_manifest("c1").await.unwrap().unwrap(), b"manifest");
    let running = store
        .transition_campaign("c1", &[S::Armed], S::Running, 1_300, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.fired_at, Some(1_300));
    // A change and its audit entry are stored together, or neither.
    let entry = NewAuditEntry {
        at: 1_400,
        actor: "engine".into(),
        action: "campaign.pause".into(),
        target: "c1".into(),
        detail: "{}".into(),
    };
    let entries = store.list_audit(0, 1_000).await.unwrap().len();
    let refused =
        store.transition_campaign("c1", &[S::Draft], S::Paused, 1_400, None, Some(&entry));
    assert!(refused.await.unwrap().is_none());
    assert_eq!(store.list_audit(0, 1_000).await.unwrap().len(), entries, "no entry without change");
    store
        .transition_campaign("c1", &[S::Running], S::Paused, 1_400, None, Some(&entry))
        .await
        .unwrap()
        .unwrap();
    let log = store.list_audit(0, 1_000).await.unwrap();
    assert_eq!(log.len(), entries + 1);
    assert_eq!(log.last().map(|e| e.action.as_str()), Some("campaign.pause"));
    let resumed = store
        .transition_campaign("c1", &[S::Paused], S::Running, 1_500, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.fired_at, Some(1_300), "first fire time kept");
    let done = store
        .transition_campaign("c1", &[S::Running], S::Cancelled, 1_600, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.finished_at, Some(1_600));
    assert_eq!(store.campaign_manifest("c1").await.unwrap().unwrap(), b"manifest", "kept");
    assert_eq!(store.list_campaigns(None, 10).await.unwrap().items.len(), 1);
}

async fn deliveries_follow_their_state_machine(store: Arc<dyn Store>) {
    use pqescape_orchestrator::campaign::CampaignState as S;
    use pqescape_orchestrator::delivery::{DeliveryState as D, Migration};
    let a = register(store.as_ref(), 1, &[]).await;
    let b = register(store.as_ref(), 2, &[]).await;
    let c = campaign(
        "camp",
        S::Draft,
        serde_json::json!({
            "name": "d", "target_suite": "x25519-mlkem768", "deadline": 5_000, "waves": [50, 100]
        }),
    );
    store.insert_campaign(&c).await.unwrap();
    let targets = vec![(a.clone(), 0), (b.clone(), 1)];
    assert_eq!(store.create_deliveries("camp", &targets, 1_100).await.unwrap(), 2);
    assert_eq!(store.create_deliveries("camp", &targets, 1_100).await.unwrap(), 0, "only once");
    assert_eq!(store.consumer(&a).await.unwrap().unwrap().last_sequence, 1, "sequence reserved");

    assert!(store.open_delivery_for(&a).await.unwrap().is_none(), "campaign not running yet");
    assert!(!store.channel_credentials(&a).await.unwrap().unwrap().owed, "nor owed");
    store
        .transition_campaign("camp", &[S::Draft], S::Running, 1_200, None, None)
        .await
        .unwrap()
        .unwrap();
    let d = store.open_delivery_for(&a).await.unwrap().unwrap();
    assert_eq!((d.state, d.sequence, d.wave), (D::Pending, 1, 0));
    assert!(store.open_delivery_for(&b).await.unwrap().is_none(), "wave 1 is not open");
    assert!(!store.channel_credentials(&b).await.unwrap().unwrap().owed, "nor owed");
    assert_eq!(
        store.delivery_tally("camp").await.unwrap().0,
        vec![(0, D::Pending, 1), (1, D::Pending, 1)]
    );

    assert!(
        store
            .update_delivery("camp", &a, &[D::Pending], D::Sent, None, Some(b"esc"), None, 1_300)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_delivery("camp", &a, &[D::Pending], D::Sent, None, None, None, 1_301)
            .await
            .unwrap(),
        "CAS"
    );
    assert!(
        store
            .update_delivery(
                "camp",
                &a,
                &[D::Sent],
                D::Negotiating,
                None,
                None,
                Some(b"pend"),
                1_302
            )
            .await
            .unwrap()
    );
    let d = store.delivery("camp", &a).await.unwrap().unwrap();
    assert_eq!(
        (d.escape.as_deref(), d.pending_sealed.as_deref()),
        (Some(&b"esc"[..]), Some(&b"pend"[..]))
    );

    let (joined, psk) = store.delivery_with_psk("camp", &a).await.unwrap().unwrap();
    assert_eq!((joined.state, joined.sequence), (d.state, d.sequence));
    assert_eq!(psk, store.consumer_psk(&a).await.unwrap(), "the delivery comes with its PSK");
    let credentials = store.channel_credentials(&a).await.unwrap().unwrap();
    assert_eq!(credentials.consumer.id, a);
    assert_eq!(credentials.psk, store.consumer_psk(&a).await.unwrap(), "with its PSK");
    assert!(credentials.owed, "a negotiating delivery is owed");
    assert!(store.delivery_with_psk("camp", "no-such-consumer").await.unwrap().is_none());

    let m = Migration { key_id: 2, psk_sealed: vec![4; 60], suite: "x25519-mlkem768".into() };
    let before = store.consumer(&a).await.unwrap().unwrap();
    assert!(
        !store.finish_delivery("camp", &a, b"other", D::Migrated, Some(&m), 1_400).await.unwrap(),
        "not against a pending context the store no longer holds"
    );
    let after = store.consumer(&a).await.unwrap().unwrap();
    assert_eq!((after.key_id, after.suite), (before.key_id, before.suite), "nothing changed");
    assert_eq!(store.delivery("camp", &a).await.unwrap().unwrap().state, D::Negotiating);
    assert!(
        store.finish_delivery("camp", &a, b"pend", D::Migrated, Some(&m), 1_400).await.unwrap()
    );
    let late = Migration { key_id: 3, psk_sealed: vec![5; 60], suite: "x25519-mlkem1024".into() };
    assert!(
        !store.finish_delivery("camp", &a, b"pend", D::Migrated, Some(&late), 1_401).await.unwrap(),
        "once, and a second migration changes nothing"
    );
    let consumer = store.consumer(&a).await.unwrap().unwrap();
    assert_eq!((consumer.key_id, consumer.suite.as_str()), (2, "x25519-mlkem768"));
    assert_eq!(store.consumer_psk(&a).await.unwrap().unwrap().sealed, vec![4; 60]);
    assert!(
        store.delivery("camp", &a).await.unwrap().unwrap().pending_sealed.is_none(),
        "pending state erased"
    );

    store.set_current_wave("camp", 1, 1_500).await.unwrap();
    assert_eq!(store.current_wave("camp").await.unwrap(), 1);
    assert!(store.open_delivery_for(&b).await.unwrap().is_some());
    assert!(store.channel_credentials(&b).await.unwrap().unwrap().owed);
    assert_eq!(store.expire_deliveries("camp", 1_600).await.unwrap(), 1);
    let mut counts = store.delivery_counts("camp").await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, vec![(D::Expired, 1), (D::Migrated, 1)]);
    // The sweep's count: by wave, then state.
    let tally = store.delivery_tally("camp").await.unwrap();
    assert_eq!(tally.0, vec![(0, D::Migrated, 1), (1, D::Expired, 1)]);
    assert_eq!((tally.open_up_to(1), tally.attempted(), tally.next_wave_after(0)), (0, 2, Some(1)));
    assert_eq!(store.running_campaigns().await.unwrap(), vec!["camp".to_owned()]);
}

async fn deliveries_are_listed_by_name_and_counted_over_time(store: Arc<dyn Store>) {
    use pqescape_orchestrator::campaign::{Campaign, CampaignState as S};
    use pqescape_orchestrator::delivery::DeliveryState as D;
    let mut ids = Vec::new();
    for n in [3, 1, 2, 4] {
        ids.push(register(store.as_ref(), n, &[]).await);
    }
    let c = Campaign {
        fired_at: Some(1_000),
        ..campaign(
            "tl",
            S::Running,
            serde_json::json!({
                "name": "t", "target_suite": "x25519-mlkem768", "deadline": 5_000
            }),
        )
    };
    store.insert_campaign(&c).await.unwrap();
    let targets: Vec<(String, u32)> = ids.iter().map(|id| (id.clone(), 0)).collect();
    store.create_deliveries("tl", &targets, 1_000).await.unwrap();

    // host-001 and host-002 end within the first 100 s, host-003 fails in the next.
    let all = [D::Pending, D::Sent, D::Negotiating];
    let end = |id: &str, to: D, reason: Option<&'static str>, at: i64| {
        let (store, id) = (store.clone(), id.to_owned());
        async move {
            assert!(
                store.update_delivery("tl", &id, &all, to, reason, None, None, at).await.unwrap()
            );
        }
    };
    end(&ids[1], D::Migrated, None, 1_010).await;
    end(&ids[2], D::Migrated, None, 1_099).await;
    end(&ids[0], D::Failed, Some("0x0030: downgrade"), 1_150).await;

    let q = |state, after: Option<String>, limit| DeliveryQuery {
        campaign_id: "tl".into(),
        state,
        after,
        limit,
    };
    let first = store.list_deliveries(&q(None, None, 3)).await.unwrap();
    let names: Vec<_> = first.items.iter().map(|d| d.consumer_name.as_str()).collect();
    assert_eq!(names, ["host-001", "host-002", "host-003"]);
    assert_eq!(first.next.as_deref(), Some("host-003"));
    let rest = store.list_deliveries(&q(None, first.next.clone(), 3)).await.unwrap();
    assert_eq!((rest.items.len(), rest.next), (1, None));
    assert_eq!(
        (rest.items[0].consumer_name.as_str(), rest.items[0].state),
        ("host-004", D::Pending)
    );

    let failed = store.list_deliveries(&q(Some(D::Failed), None, 10)).await.unwrap().items;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].consumer_id.as_str(), failed[0].reason.as_deref(), failed[0].updated_at),
        (ids[0].as_str(), Some("0x0030: downgrade"), 1_150)
    );
    let other = DeliveryQuery { campaign_id: "none".into(), ..q(None, None, 10) };
    assert!(store.list_deliveries(&other).await.unwrap().items.is_empty());

    let over_time = store.ended_deliveries_over_time("tl", 100).await.unwrap();
    let rows: Vec<_> = over_time.iter().map(|b| (b.at, b.state, b.count)).collect();
    assert_eq!(rows, vec![(1_000, D::Migrated, 2), (1_100, D::Failed, 1)], "pending left out");
    assert_eq!(store.ended_deliveries_over_time("tl", 1_000).await.unwrap().len(), 2);
}

async fn dispatch_and_heartbeats_work_in_batches(store: Arc<dyn Store>) {
    use pqescape_orchestrator::campaign::CampaignState as S;
    use pqescape_orchestrator::delivery::DeliveryState as D;
    use pqescape_orchestrator::store::Dispatch;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = register(store.as_ref(), n, &[]).await;
        let psk = SealedPsk { key_id: 1, sealed: b"sealed".to_vec() };
        assert!(store.complete_enrollment(&format!("tok{n}"), &psk, 500).await.unwrap());
        ids.push(id);
    }
    let c = campaign(
        "batch",
        S::Draft,
        serde_json::json!({
            "name": "b", "target_suite": "x25519-mlkem768", "deadline": 5_000
        }),
    );
    store.insert_campaign(&c).await.unwrap();
    let targets: Vec<(String, u32)> = ids.iter().map(|id| (id.clone(), 0)).collect();
    assert_eq!(store.create_deliveries("batch", &targets, 1_100).await.unwrap(), 3);
    for id in &ids {
        assert_eq!(store.consumer(id).await.unwrap().unwrap().last_sequence, 1, "{id}");
    }
    assert!(store.dispatch_rows("batch", 2_000, "", 100).await.unwrap().is_empty(), "not running");
    store.transition_campaign("batch", &[S::Draft], S::Running, 1_200, None, None).await.unwrap();

    // In consumer id order, a page at a time, each with its sealed PSK.
    let mut sorted = ids.clone();
    sorted.sort();
    let rows = store.dispatch_rows("batch", 2_000, "", 2).await.unwrap();
    let page: Vec<_> = rows.iter().map(|(d, _)| d.consumer_id.clone()).collect();
    assert_eq!(page, sorted[..2]);
    assert!(
        rows.iter()
            .all(|(d, psk)| d.state == D::Pending && psk.key_id == 1 && psk.sealed == b"sealed")
    );
    let rest = store.dispatch_rows("batch", 2_000, &sorted[1], 2).await.unwrap();
    let rest: Vec<_> = rest.into_iter().map(|(d, _)| d.consumer_id).collect();
    assert_eq!(rest, sorted[2..]);

    let first = |id: &String| Dispatch {
        consumer_id: id.clone(),
        from: D::Pending,
        escape: Some(b"esc".to_vec()),
    };
    let sends = vec![first(&ids[0]), first(&ids[1])];
    assert_eq!(store.mark_sent("batch", &sends, 1_300).await.unwrap(), vec![true, true]);
    assert_eq!(store.mark_sent("batch", &sends, 1_301).await.unwrap(), vec![false, false], "CAS");
    let again = Dispatch { consumer_id: ids[0].clone(), from: D::Sent, escape: None };
    assert_eq!(store.mark_sent("batch", &[again], 1_400).await.unwrap(), vec![true]);
    // One batch whose rows are not all where the engine read them: each is
    // answered in its place.
    let resend = |id: &String| Dispatch { consumer_id: id.clone(), from: D::Sent, escape: None };
    let mixed = [resend(&ids[2]), resend(&ids[1])];
    assert_eq!(store.mark_sent("batch", &mixed, 1_400).await.unwrap(), vec![false, true]);
    let d = store.delivery("batch", &ids[0]).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts, d.updated_at), (D::Sent, 2, 1_400));
    // Pending ones always; sent ones only once their send is old enough.
    let owed = |rows: Vec<(pqescape_orchestrator::delivery::Delivery, SealedPsk)>| {
        rows.into_iter().map(|(d, _)| (d.consumer_id, d.state)).collect::<Vec<_>>()
    };
    let fresh = owed(store.dispatch_rows("batch", 1_299, "", 100).await.unwrap());
    assert_eq!(fresh, vec![(ids[2].clone(), D::Pending)]);
    let due = owed(store.dispatch_rows("batch", 1_400, "", 100).await.unwrap());
    assert_eq!(due.len(), 3, "{due:?}");
    assert_eq!(d.escape.as_deref(), Some(&b"esc"[..]), "a resend keeps the escape");

    store.touch_consumers(&ids[1..], 2_000).await.unwrap();
    assert_eq!(store.consumer(&ids[0]).await.unwrap().unwrap().last_seen, None);
    assert_eq!(store.consumer(&ids[2]).await.unwrap().unwrap().last_seen, Some(2_000));
    store.touch_consumers(&[], 2_001).await.unwrap();
}

/// A campaign that fires holds every target's row until it has reserved their
/// sequence numbers; a heartbeat batch written meanwhile must neither wait for it
/// nor deadlock with it (PostgreSQL; SQLite has one writer at a time).
#[tokio::test]
async fn heartbeats_skip_rows_a_firing_campaign_holds() {
    use sqlx::Connection;
    let db = PgDatabase::create().await;
    let store = pg_store(&db).await;
    let held = register(store.as_ref(), 1, &[]).await;
    let free = register(store.as_ref(), 2, &[]).await;
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("UPDATE consumers SET last_sequence = last_sequence + 1 WHERE id = $1")
        .bind(&held)
        .execute(&mut *tx)
        .await
        .unwrap();

    let batch = [held.clone(), free.clone()];
    let touch = store.touch_consumers(&batch, 3_000);
    tokio::time::timeout(std::time::Duration::from_secs(5), touch)
        .await
        .expect("the batch waited for a row another transaction holds")
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.consumer(&free).await.unwrap().unwrap().last_seen, Some(3_000));
    assert_eq!(store.consumer(&held).await.unwrap().unwrap().last_seen, None, "left for later");
    drop(other);
    drop(store);
    db.drop_now().await;
}

async fn a_campaign_is_counted_once_for_every_replica(store: Arc<dyn Store>) {
    use pqescape_orchestrator::campaign::CampaignState as S;
    use pqescape_orchestrator::delivery::DeliveryState as D;
    use pqescape_orchestrator::tally::{Counted, SharedTally, Tallies};
    let a = register(store.as_ref(), 1, &[]).await;
    let b = register(store.as_ref(), 2, &[]).await;
    let c = campaign(
        "camp",
        S::Running,
        serde_json::json!({
            "name": "t", "target_suite": "x25519-mlkem768", "deadline": 5_000
        }),
    );
    store.insert_campaign(&c).await.unwrap();
    store.create_deliveries("camp", &[(a.clone(), 0), (b, 0)], 1_100).await.unwrap();

    // The claim is a compare-and-set on the claim read before it.
    assert_eq!(store.shared_tally("camp").await.unwrap(), None);
    assert!(store.claim_tally("camp", None, 10_000).await.unwrap());
    assert!(!store.claim_tally("camp", None, 10_001).await.unwrap(), "claimed already");
    let claimed = SharedTally { claimed_at_ms: 10_000, counted: None };
    assert_eq!(store.shared_tally("camp").await.unwrap(), Some(claimed));
    let counted = Counted { tally: store.delivery_tally("camp").await.unwrap(), at_ms: 10_000 };
    store.save_tally("camp", &counted).await.unwrap();
    assert!(!store.claim_tally("camp", Some(9_000), 11_000).await.unwrap(), "not the claim read");
    assert!(store.claim_tally("camp", Some(10_000), 11_000).await.unwrap());
    let shared = store.shared_tally("camp").await.unwrap().unwrap();
    assert_eq!((shared.claimed_at_ms, shared.counted), (11_000, Some(counted)), "counts kept");

    // Two replicas: the first to find the count old makes the next; the other
    // reads it until it is old in turn.
    let (one, two) = (Tallies::default(), Tallies::default());
    let first = one.count(store.as_ref(), "camp", 20_000).await.unwrap();
    assert_eq!((first.at_ms, first.tally.0.clone()), (20_000, vec![(0, D::Pending, 2)]));
    store
        .update_delivery("camp", &a, &[D::Pending], D::Sent, None, Some(b"esc"), None, 1_300)
        .await
        .unwrap();
    assert_eq!(two.count(store.as_ref(), "camp", 20_400).await.unwrap(), first, "shared");
    let next = two.count(store.as_ref(), "camp", 21_000).await.unwrap();
    assert_eq!((next.at_ms, next.tally.0), (21_000, vec![(0, D::Pending, 1), (0, D::Sent, 1)]));
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = TempDir::new();
                    super::$case(sqlite_store(&dir).await).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let db = PgDatabase::create().await;
                    super::$case(pg_store(&db).await).await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

conformance!(
    consumers_register_list_and_page,
    names_are_unique,
    labels_and_revocation,
    enrollment_tokens_are_one_time_and_expire,
    api_tokens,
    audit_chain_is_appended_in_order,
    settings_and_signing_key_are_set_once,
    campaigns_move_only_along_their_rules,
    deliveries_follow_their_state_machine,
    deliveries_are_listed_by_name_and_counted_over_time,
    dispatch_and_heartbeats_work_in_batches,
    a_campaign_is_counted_once_for_every_replica,
);
