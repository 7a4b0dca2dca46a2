//! Reliability end to end (real binaries, both sandboxes enforcing their limits, the local AWS
//! endpoint): 10,000 records sync through 429 bursts, 5xx answers, answers dropped after the
//! write was applied, duplicate SQS deliveries and a worker killed between an external write and
//! its ledger write. Afterwards, read through the sandboxes' APIs: no duplicate on either side,
//! every eligible record synced, the rest left out with a reason, cursors where they should be,
//! and no limit exceeded by the integration's own pacing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use hubspot_qbo_core::sync::cursors::{Cursor, Cursors};
use integration_tests::harness::{duplicates, property, SyncStack};
use serde_json::{json, Value};

const CONTACT: ObjectKind = ObjectKind::Contact;
const FROM_QUICKBOOKS: usize = 9_000;
const FROM_HUBSPOT: usize = 1_000;
/// QuickBooks' limits, times this, on both sides (so a thousand creates take seconds).
const QBO_SCALE: u32 = 4;

#[tokio::test]
async fn ten_thousand_records_survive_throttling_errors_lost_answers_duplicates_and_a_crash(
) -> anyhow::Result<()> {
    let started_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let s = SyncStack::start_with("reliability", |o| {
        o.duplicate_deliveries = 0.1;
        for (name, value) in [
            ("QboRequestsPerMinute", 500 * QBO_SCALE),
            ("QboBatchesPerMinute", 40 * QBO_SCALE),
        ] {
            o.parameters.insert(name.into(), value.to_string());
        }
    })
    .await?;
    let mut limits = s.control_get(&s.qbo, "/_sandbox/throttle").await?;
    limits["scale"] = json!(QBO_SCALE);
    s.control(&s.qbo, "/_sandbox/throttle", limits).await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| {
        c.filters.hubspot_to_qbo.clear();
        c.display_name_from_company = false;
    })
    .await?;
    p.qbo_generate(FROM_QUICKBOOKS, 0).await?;
    let contacts: Vec<Value> = (0..FROM_HUBSPOT)
        .map(|i| json!({"email": format!("r{i}@reliable.example"), "firstname": "Rel", "lastname": format!("Person {i}")}))
        .collect();
    p.hubspot_create_many("contacts", contacts).await?;

    // The first QuickBooks batch is held after it was applied, and the worker killed meanwhile.
    let crash = s
        .add_fault(
            &s.qbo,
            json!({"method": "POST", "path": "/v3/company/*/batch", "action": "delay_answer",
                "latency_ms": 4000, "times": 1}),
        )
        .await?;
    let throttled = json!({"Fault": {"Error": [{"Message": "ThrottleExceeded", "Detail":
        "The request limit was reached.", "code": "3001"}], "type": "ThrottleExceeded"}});
    let mut injected_429 = Vec::new();
    let mut injected = Vec::new();
    for (sandbox, rule, is_429) in [
        (
            &s.qbo,
            json!({"method": "POST", "path": "/v3/company/*/batch", "action": "respond",
            "status": 503, "body": "Service Unavailable", "probability": 0.08}),
            false,
        ),
        (
            &s.qbo,
            json!({"method": "POST", "path": "/v3/company/*/batch", "action": "drop_response",
            "probability": 0.08}),
            false,
        ),
        (
            &s.qbo,
            json!({"method": "POST", "path": "/v3/company/*/query", "action": "respond",
            "status": 429, "body": throttled, "headers": {"Retry-After": "1"}, "probability": 0.1}),
            true,
        ),
        (
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v3/objects/contacts/batch/*",
            "action": "respond", "status": 429, "headers": {"Retry-After": "1"},
            "body": {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "category": "RATE_LIMITS", "policyName": "TEN_SECONDLY_ROLLING"},
            "probability": 0.1}),
            true,
        ),
        (
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v3/objects/contacts/batch/upsert",
            "action": "drop_response", "probability": 0.08}),
            false,
        ),
        (
            &s.hubspot,
            json!({"method": "*", "path": "/crm/v3/objects/contacts*", "action": "respond",
            "status": 502, "body": "Bad Gateway", "probability": 0.04}),
            false,
        ),
    ] {
        let id = s.add_fault(sandbox, rule).await?;
        injected.push((sandbox.clone(), id));
        if is_429 {
            injected_429.push((sandbox.clone(), id));
        }
    }

    let worker = s.stack.function("ObjectSyncFunction")?.clone();
    let before_crash = worker.pids();
    s.round().await?;
    let waited = Instant::now();
    while s.faults(&s.qbo).await?.iter().any(|r| r["id"] == crash) {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(120),
            "no QuickBooks batch was sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The batch is applied and its answer held: the worker dies before it can record it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.kill_instances();
    s.settle().await?;

    // Every fault fired; then they stop, and the rounds go on until nothing moves.
    let mut hits: Vec<(String, u64, u64)> = Vec::new();
    for sandbox in [&s.qbo, &s.hubspot] {
        for rule in s.faults(sandbox).await? {
            let id = rule["id"].as_u64().unwrap_or_default();
            hits.push((
                sandbox.clone(),
                id,
                rule["hits"].as_u64().unwrap_or_default(),
            ));
        }
        s.clear_faults(sandbox).await?;
    }
    for (sandbox, id) in &injected {
        let fired = hits
            .iter()
            .find(|(s, i, _)| s == sandbox && i == id)
            .map_or(0, |(_, _, n)| *n);
        assert!(fired > 0, "fault {id} of {sandbox} never fired");
    }
    assert_ne!(worker.pids(), before_crash, "the worker was replaced");
    let deadline = Instant::now();
    loop {
        s.sync().await?;
        let (synced, failing, _, pending) = p.counts(CONTACT).await?;
        if synced + failing >= FROM_QUICKBOOKS + FROM_HUBSPOT && pending == 0 {
            break;
        }
        anyhow::ensure!(
            deadline.elapsed() < Duration::from_secs(300),
            "the sync did not converge: {synced} synced, {failing} failing, {pending} pending"
        );
    }

    // No duplicate on either side; every customer linked to exactly one contact and back.
    let customers = p.qbo_all("Customer").await?;
    let contacts = p.hubspot_all("contacts").await?;
    assert_eq!(
        customers.len(),
        FROM_QUICKBOOKS + FROM_HUBSPOT,
        "QuickBooks holds each person once"
    );
    assert_eq!(
        contacts.len(),
        FROM_QUICKBOOKS + FROM_HUBSPOT,
        "HubSpot holds each person once"
    );
    let emails = |records: &[Value], read: fn(&Value) -> Option<String>| -> Vec<String> {
        records.iter().filter_map(read).collect()
    };
    let customer_emails = emails(&customers, |c| {
        c["PrimaryEmailAddr"]["Address"]
            .as_str()
            .map(|e| e.trim().to_lowercase())
    });
    let contact_emails = emails(&contacts, |c| property(c, "email").map(str::to_lowercase));
    assert!(duplicates(customer_emails.iter().map(String::as_str)).is_empty());
    assert!(duplicates(contact_emails.iter().map(String::as_str)).is_empty());
    let linked: Vec<&str> = contacts
        .iter()
        .filter_map(|c| property(c, "qbo_customer_id"))
        .collect();
    assert!(
        duplicates(linked.iter().copied()).is_empty(),
        "no customer linked twice"
    );
    let customer_ids: BTreeSet<&str> = customers.iter().filter_map(|c| c["Id"].as_str()).collect();
    assert_eq!(
        linked.iter().copied().collect::<BTreeSet<_>>(),
        customer_ids,
        "every customer is linked to a contact"
    );

    // The ledger agrees: all synced (or, for any that is not, a reason), nothing pending.
    let (synced, failing, excluded, pending) = p.counts(CONTACT).await?;
    assert_eq!(pending, 0);
    assert_eq!(synced + failing + excluded, FROM_QUICKBOOKS + FROM_HUBSPOT);
    for entry in p.entries(CONTACT, LinkStatus::Failing).await? {
        let failure = entry.failure.expect("a failing entry says why");
        assert!(!failure.message.is_empty());
    }
    assert_eq!(
        synced,
        FROM_QUICKBOOKS + FROM_HUBSPOT,
        "every eligible record synced"
    );

    // Cursors moved past the changes, to about now.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cursors = Cursors::new(s.services.store.clone());
    for side in [Provider::HubSpot, Provider::Qbo] {
        let (cursor, _) = cursors
            .get(&p.connection, CONTACT, side, now)
            .await?
            .expect("a cursor per side");
        let Cursor::Incremental { since } = cursor else {
            panic!("{side:?} is still backfilling: {cursor:?}");
        };
        let at = match side {
            Provider::HubSpot => since.parse::<i64>()? / 1000,
            Provider::Qbo => {
                time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339)?
                    .unix_timestamp()
            }
        };
        assert!(
            at >= started_at && at <= now + 1,
            "{side:?} cursor at {since}"
        );
    }

    // Every 429 the sandboxes answered was one injected on purpose.
    for sandbox in [&s.qbo, &s.hubspot] {
        let answered = s.answered(sandbox, 429).await?;
        let on_purpose: u64 = injected_429
            .iter()
            .filter(|(s, _)| s == sandbox)
            .filter_map(|(_, id)| hits.iter().find(|(s, i, _)| s == sandbox && i == id))
            .map(|(_, _, n)| *n)
            .sum();
        assert_eq!(
            answered, on_purpose,
            "{sandbox}: the limits were hit by our own pacing"
        );
    }
    s.stop().await
}
