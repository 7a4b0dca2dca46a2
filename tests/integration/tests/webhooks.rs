//! Change notifications end to end (real binaries, both sandboxes, the local AWS endpoint):
//! an edit on either side reaches the other within seconds through the sandboxes' webhooks,
//! and within the poll interval when notifications are off or lost; forged, stale, replayed,
//! malformed and oversized notifications are refused and change nothing; a burst of 10,000
//! notifications makes a bounded number of polls; uninstalls and disconnects end the
//! connection.

use std::time::{Duration, Instant};

use hubspot_qbo_core::actions::signature::v3_signature;
use hubspot_qbo_core::connection::registry::{ConnectionStatus, Connections};
use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::store::{keys, Table};
use hubspot_qbo_core::webhooks::{intuit_signature, nudge::most_polls};
use integration_tests::harness::{eventually, now_ms, Pair, SyncStack, TEST_HUBSPOT_SECRET};
use serde_json::{json, Value};

const CONTACT: ObjectKind = ObjectKind::Contact;
const VERIFIER: &str = "test-verifier-token";
/// The template's default nudge window.
const WINDOW: Duration = Duration::from_secs(3);
/// How long after a nudge its poll has surely run: the window, the task's two seconds past it,
/// and a second to be picked up.
const NUDGED_POLL_DONE: Duration = Duration::from_secs(6);

fn webhooks_url(s: &SyncStack) -> anyhow::Result<String> {
    Ok(s.stack.url("WebhooksFunction")?.to_owned())
}

/// Posts a HubSpot notification signed (v3) at `timestamp_ms` with `secret`.
async fn hubspot_notify(
    url: &str,
    body: &str,
    timestamp_ms: i64,
    secret: &str,
) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(
            "X-HubSpot-Signature-v3",
            v3_signature(secret, "POST", url, body.as_bytes(), timestamp_ms),
        )
        .header("X-HubSpot-Request-Timestamp", timestamp_ms.to_string())
        .body(body.to_owned())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn qbo_notify(url: &str, body: &str, signature: &str) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("intuit-signature", signature)
        .body(body.to_owned())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

fn contact_events(portal: u64, from_id: u64, count: u64) -> String {
    let events: Vec<Value> = (0..count)
        .map(|i| {
            json!({"eventId": from_id + i, "subscriptionId": 1, "portalId": portal, "appId": 1000001,
                "occurredAt": now_ms(), "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0, "objectId": from_id + i, "propertyName": "phone",
                "propertyValue": "555", "changeSource": "CRM_UI"})
        })
        .collect();
    Value::Array(events).to_string()
}

fn customer_events(realm: &str, count: u64) -> String {
    let events: Vec<Value> = (0..count)
        .map(|i| {
            json!({"specversion": "1.0", "id": format!("e-{}-{i}", now_ms()), "source": "intuit.test",
                "type": "qbo.customer.updated.v1", "time": "2026-12-01T00:00:00Z",
                "intuitentityid": i.to_string(), "intuitaccountid": realm, "data": {}})
        })
        .collect();
    Value::Array(events).to_string()
}

/// A contact made in HubSpot shows up in QuickBooks, and a phone edited in QuickBooks shows up
/// in HubSpot; answers how long each took.
async fn edit_both_ways(
    p: &Pair<'_>,
    name: &str,
    limit: Duration,
) -> anyhow::Result<[Duration; 2]> {
    let (linked, to_qbo) = p.contact_made_in_hubspot(name, limit).await?;
    let phone = format!("555-{}", now_ms() % 10_000);
    let to_hubspot = p
        .phone_edited(&linked, Provider::Qbo, &phone, limit)
        .await?;
    Ok([to_qbo, to_hubspot])
}

#[tokio::test]
async fn edits_reach_the_other_side_within_seconds_through_notifications() -> anyhow::Result<()> {
    // No schedule runs and no round is started: only notifications can move anything.
    let s = SyncStack::start_with("webhooks-on", |o| o.webhooks = true).await?;
    assert!(s.stack.webhooks_pointed);
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let [to_qbo, to_hubspot] = edit_both_ways(&p, "ada", Duration::from_secs(20)).await?;
    assert!(
        to_qbo < Duration::from_secs(15),
        "HubSpot -> QuickBooks took {to_qbo:?}"
    );
    assert!(
        to_hubspot < Duration::from_secs(15),
        "QuickBooks -> HubSpot took {to_hubspot:?}"
    );

    // They went through the function: both sandboxes' deliveries were answered 200.
    for sandbox in [&s.hubspot, &s.qbo] {
        let deliveries = s
            .control_get(sandbox, "/_sandbox/webhooks/deliveries")
            .await?;
        let answered: Vec<&Value> = deliveries["deliveries"]
            .as_array()
            .map(|d| d.iter().filter(|a| a["status"] == 200).collect())
            .unwrap_or_default();
        assert!(!answered.is_empty(), "{sandbox}: {deliveries}");
    }
    s.stop().await
}

#[tokio::test]
async fn without_notifications_edits_still_arrive_within_the_poll_interval() -> anyhow::Result<()> {
    const PERIOD: Duration = Duration::from_secs(12);
    let s = SyncStack::start_with("webhooks-off", |o| {
        o.webhooks = true;
        o.run_schedules = true;
        o.schedule_period = Some(PERIOD);
    })
    .await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    // HubSpot's notifications switched off (the app's webhook settings deleted) …
    let app_id = s
        .stack
        .manifest
        .function("WebhooksFunction")?
        .environment
        .get("HUBSPOT_APP_ID")
        .cloned()
        .unwrap_or_default();
    let off = reqwest::Client::new()
        .delete(format!(
            "{}/webhooks/v3/{app_id}/settings?hapikey={}",
            s.hubspot,
            local_stack::sandboxes::HUBSPOT_DEVELOPER_API_KEY
        ))
        .send()
        .await?;
    assert_eq!(off.status().as_u16(), 204);
    // … and every QuickBooks notification lost (sent where nothing listens).
    local_stack::webhooks::set_qbo_webhooks(&s.qbo, Some("http://127.0.0.1:9/")).await?;

    let limit = PERIOD * 3 / 2;
    let [to_qbo, to_hubspot] = edit_both_ways(&p, "bea", limit + Duration::from_secs(5)).await?;
    assert!(to_qbo <= limit, "HubSpot -> QuickBooks took {to_qbo:?}");
    assert!(
        to_hubspot <= limit,
        "QuickBooks -> HubSpot took {to_hubspot:?}"
    );
    let lost = s
        .control_get(&s.qbo, "/_sandbox/webhooks/deliveries")
        .await?;
    assert!(
        lost["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|a| a["delivered"] == false)),
        "every QuickBooks notification was lost: {lost}"
    );
    s.stop().await
}

/// Reads of changes the sandboxes answered (HubSpot searches and lists, QuickBooks CDC and
/// queries).
async fn change_reads(s: &SyncStack) -> anyhow::Result<u64> {
    let mut reads = 0;
    for (sandbox, marks) in [
        (&s.hubspot, ["/search", "GET /crm"]),
        (&s.qbo, ["/cdc", "/query"]),
    ] {
        reads += s
            .counters(sandbox)
            .await?
            .iter()
            .filter(|(endpoint, _)| marks.iter().any(|m| endpoint.contains(m)))
            .filter_map(|(_, c)| c["count"].as_u64())
            .sum::<u64>();
    }
    Ok(reads)
}

#[tokio::test]
async fn forged_stale_replayed_malformed_and_oversized_notifications_change_nothing(
) -> anyhow::Result<()> {
    let s = SyncStack::start_with("webhooks-refused", |o| o.webhooks = true).await?;
    let p = s.pair().await?;
    let base = webhooks_url(&s)?;
    let (hubspot, qbo) = (format!("{base}hubspot"), format!("{base}qbo"));
    let body = contact_events(p.portal, 1, 3);
    let qbo_body = customer_events(&p.realm, 2);
    // The connect's own writes come back as notifications: let their polls finish first.
    tokio::time::sleep(NUDGED_POLL_DONE).await;
    s.settle().await?;
    let reads_before = change_reads(&s).await?;

    let now = now_ms();
    let huge = format!("[{}]", "1,".repeat(800_000));
    let cases: Vec<(&str, (u16, Value), u16, &str)> = vec![
        (
            "signed with another secret",
            hubspot_notify(&hubspot, &body, now, "not-the-secret").await?,
            401,
            "signature_mismatch",
        ),
        (
            "six minutes old",
            hubspot_notify(&hubspot, &body, now - 6 * 60_000, TEST_HUBSPOT_SECRET).await?,
            401,
            "stale_timestamp",
        ),
        (
            "six minutes ahead",
            hubspot_notify(&hubspot, &body, now + 6 * 60_000, TEST_HUBSPOT_SECRET).await?,
            401,
            "stale_timestamp",
        ),
        (
            "signed, not JSON",
            hubspot_notify(&hubspot, "not json", now, TEST_HUBSPOT_SECRET).await?,
            400,
            "malformed_notification",
        ),
        (
            "signed, events without a portal",
            hubspot_notify(
                &hubspot,
                r#"[{"subscriptionType":"contact.creation"}]"#,
                now,
                TEST_HUBSPOT_SECRET,
            )
            .await?,
            400,
            "malformed_notification",
        ),
        (
            "over a MiB",
            hubspot_notify(&hubspot, &huge, now, TEST_HUBSPOT_SECRET).await?,
            413,
            "payload_too_large",
        ),
        (
            "QuickBooks, wrong signature",
            qbo_notify(
                &qbo,
                &qbo_body,
                &intuit_signature("other-token", qbo_body.as_bytes()),
            )
            .await?,
            401,
            "signature_mismatch",
        ),
        (
            "QuickBooks, an empty signature",
            qbo_notify(&qbo, &qbo_body, "").await?,
            401,
            "signature_mismatch",
        ),
        (
            "QuickBooks, signed, not CloudEvents",
            qbo_notify(
                &qbo,
                r#"{"x":1}"#,
                &intuit_signature(VERIFIER, br#"{"x":1}"#),
            )
            .await?,
            400,
            "malformed_notification",
        ),
    ];
    for (what, (status, answer), expected, category) in &cases {
        assert_eq!(*status, *expected, "{what}: {answer}");
        assert_eq!(answer["category"], *category, "{what}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && !message.contains(TEST_HUBSPOT_SECRET),
            "{what}: {answer}"
        );
    }
    // A request with only the older signatures, or none.
    let v1_only = reqwest::Client::new()
        .post(&hubspot)
        .header("X-HubSpot-Signature", "0".repeat(64))
        .header("X-HubSpot-Signature-Version", "v1")
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(v1_only.status().as_u16(), 401);
    let answer: Value = v1_only.json().await?;
    assert_eq!(answer["category"], "signature_missing", "{answer}");
    let no_header = reqwest::Client::new()
        .post(&qbo)
        .body(qbo_body.clone())
        .send()
        .await?;
    assert_eq!(no_header.status().as_u16(), 401);
    let answer: Value = no_header.json().await?;
    assert_eq!(answer["category"], "signature_missing", "{answer}");

    // Nothing was queued: no nudge was claimed, and no change was read after a full window.
    let now_s = now_ms() / 1000;
    let claim = s
        .services
        .store
        .get(
            Table::Connections,
            &keys::connections::nudge(&p.connection, CONTACT),
            now_s,
        )
        .await?;
    assert!(claim.is_none(), "{claim:?}");
    tokio::time::sleep(NUDGED_POLL_DONE).await;
    s.settle().await?;
    assert!(reads_before > 0, "the connect read both sides");
    assert_eq!(
        change_reads(&s).await?,
        reads_before,
        "refused notifications read nothing"
    );

    // A good one is taken once; the same request again is a replay.
    let stamp = now_ms();
    let (status, first) = hubspot_notify(&hubspot, &body, stamp, TEST_HUBSPOT_SECRET).await?;
    assert_eq!(
        (status, first["nudged"].as_u64()),
        (200, Some(1)),
        "{first}"
    );
    let (status, again) = hubspot_notify(&hubspot, &body, stamp, TEST_HUBSPOT_SECRET).await?;
    assert_eq!(
        (status, again["category"].as_str()),
        (401, Some("replayed")),
        "{again}"
    );
    // The control: the one taken made its poll read.
    tokio::time::sleep(NUDGED_POLL_DONE).await;
    s.settle().await?;
    assert!(
        change_reads(&s).await? > reads_before,
        "a taken notification's poll reads"
    );
    // QuickBooks signs the body only and retries it as is: the repeat is acknowledged, and
    // adds nothing.
    let signed = intuit_signature(VERIFIER, qbo_body.as_bytes());
    let (status, first) = qbo_notify(&qbo, &qbo_body, &signed).await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["duplicate"], false, "{first}");
    let (status, again) = qbo_notify(&qbo, &qbo_body, &signed).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["duplicate"].as_bool(), again["nudged"].as_u64()),
        (Some(true), Some(0))
    );
    // Old QuickBooks events are acknowledged and ignored.
    let old = customer_events(&p.realm, 1).replace("2026-12-01T00:00:00Z", "2020-01-01T00:00:00Z");
    let (status, stale) =
        qbo_notify(&qbo, &old, &intuit_signature(VERIFIER, old.as_bytes())).await?;
    assert_eq!(
        (status, stale["stale"].as_bool(), stale["nudged"].as_u64()),
        (200, Some(true), Some(0))
    );
    s.stop().await
}

#[tokio::test]
async fn a_burst_of_ten_thousand_notifications_makes_a_bounded_number_of_polls(
) -> anyhow::Result<()> {
    let s = SyncStack::start_with("webhooks-burst", |o| o.webhooks = true).await?;
    let p = s.pair().await?;
    let base = webhooks_url(&s)?;
    let (hubspot, qbo) = (format!("{base}hubspot"), format!("{base}qbo"));
    tokio::time::sleep(NUDGED_POLL_DONE).await;
    s.settle().await?;
    let reads_before = change_reads(&s).await?;

    // 50 HubSpot requests and 50 QuickBooks ones of 100 events each, ten at a time, all about
    // the contacts of one connection.
    let started = Instant::now();
    let requests: Vec<_> = (0..100u64)
        .map(|n| {
            let (hubspot, qbo, realm, portal) =
                (hubspot.clone(), qbo.clone(), p.realm.clone(), p.portal);
            async move {
                if n % 2 == 0 {
                    let body = contact_events(portal, n * 100, 100);
                    hubspot_notify(&hubspot, &body, now_ms(), TEST_HUBSPOT_SECRET).await
                } else {
                    let body = customer_events(&realm, 100);
                    qbo_notify(&qbo, &body, &intuit_signature(VERIFIER, body.as_bytes())).await
                }
            }
        })
        .collect();
    use futures::StreamExt;
    let answers: Vec<_> = futures::stream::iter(requests)
        .buffer_unordered(10)
        .collect()
        .await;
    let burst = started.elapsed();
    let (mut events, mut nudged, mut coalesced) = (0, 0, 0);
    for answer in answers {
        let (status, taken) = answer?;
        assert_eq!(status, 200, "{taken}");
        events += taken["events"].as_u64().unwrap_or(0);
        nudged += taken["nudged"].as_u64().unwrap_or(0);
        coalesced += taken["coalesced"].as_u64().unwrap_or(0);
    }
    assert_eq!(events, 10_000);
    let bound = most_polls(burst, WINDOW);
    assert!(
        nudged >= 1 && nudged <= bound,
        "{nudged} polls for a {burst:?} burst; bound {bound}"
    );
    assert_eq!(nudged + coalesced, 100, "one nudge per request and object");

    // The sandboxes saw no more reads than those polls make (each reads both sides, a few
    // calls each).
    tokio::time::sleep(NUDGED_POLL_DONE).await;
    s.settle().await?;
    let reads = change_reads(&s).await? - reads_before;
    assert!(
        reads >= 1 && reads <= 4 * bound,
        "{reads} reads for {nudged} polls"
    );
    s.stop().await
}

/// How many calls of `endpoint` the QuickBooks sandbox has answered.
async fn answered_at(s: &SyncStack, endpoint: &str) -> anyhow::Result<u64> {
    Ok(s.counters(&s.qbo)
        .await?
        .get(endpoint)
        .and_then(|c| c["count"].as_u64())
        .unwrap_or(0))
}

fn connections(s: &SyncStack) -> Connections {
    Connections::new(s.services.store.clone())
}

async fn tokens_kept(s: &SyncStack, provider: Provider, owner: &str) -> anyhow::Result<bool> {
    Ok(s.services
        .store
        .get(
            Table::Connections,
            &keys::connections::tokens(provider, owner),
            now_ms() / 1000,
        )
        .await?
        .is_some())
}

async fn status_becomes(
    s: &SyncStack,
    p: &Pair<'_>,
    status: ConnectionStatus,
    within: Duration,
) -> anyhow::Result<()> {
    eventually(within, "the connection's status", || async {
        let now = connections(s).get(&p.connection, now_ms() / 1000).await?;
        Ok(now.filter(|c| c.status == status).map(|_| ()))
    })
    .await
}

#[tokio::test]
async fn an_uninstall_or_a_disconnect_at_the_provider_ends_the_connection() -> anyhow::Result<()> {
    let s = SyncStack::start_with("webhooks-lifecycle", |o| o.webhooks = true).await?;

    // HubSpot: the app uninstalled from the portal. The connection stops, and the company's
    // QuickBooks tokens (still good) are revoked and forgotten.
    let p = s.pair().await?;
    assert!(tokens_kept(&s, Provider::Qbo, &p.realm).await?);
    let hubspot = format!("{}hubspot", webhooks_url(&s)?);
    let uninstall = |at: i64| {
        json!([{"eventId": 1, "subscriptionId": 1, "portalId": p.portal, "appId": 1000001,
            "occurredAt": at, "subscriptionType": "app.uninstall", "attemptNumber": 0}])
        .to_string()
    };
    // A forged uninstall is refused; one from before the portal's tokens (a late retry of an
    // old uninstall) is taken and ignored. Neither stops the connection.
    let (status, _) = hubspot_notify(&hubspot, &uninstall(now_ms()), now_ms(), "forged").await?;
    assert_eq!(status, 401);
    let an_hour_ago = uninstall(now_ms() - 3_600_000);
    let (status, old) =
        hubspot_notify(&hubspot, &an_hour_ago, now_ms(), TEST_HUBSPOT_SECRET).await?;
    assert_eq!(status, 200, "{old}");
    assert_eq!(
        (old["disconnected"].as_u64(), old["ignored"].as_u64()),
        (Some(0), Some(1)),
        "{old}"
    );
    let still = connections(&s).get(&p.connection, now_ms() / 1000).await?;
    assert_eq!(still.map(|c| c.status), Some(ConnectionStatus::Active));
    let revoked_before = answered_at(&s, "POST /v2/oauth2/tokens/revoke").await?;
    s.control(
        &s.hubspot,
        &format!("/_sandbox/portals/{}/uninstall", p.portal),
        json!({}),
    )
    .await?;
    status_becomes(
        &s,
        &p,
        ConnectionStatus::Disconnected,
        Duration::from_secs(20),
    )
    .await?;
    eventually(
        Duration::from_secs(20),
        "the QuickBooks tokens forgotten",
        || async { Ok((!tokens_kept(&s, Provider::Qbo, &p.realm).await?).then_some(())) },
    )
    .await?;
    s.settle().await?;
    assert_eq!(
        answered_at(&s, "POST /v2/oauth2/tokens/revoke").await? - revoked_before,
        1,
        "the company's tokens were revoked at Intuit"
    );
    let owner = connections(&s)
        .owner_of(&p.realm.parse()?, now_ms() / 1000)
        .await?;
    assert_eq!(owner, None, "the company can be connected again");

    // QuickBooks: someone opens the Disconnect URL without disconnecting anything. The
    // integration asks Intuit, whose tokens still work, and keeps the connection.
    let q = s.pair().await?;
    // Opened in a loop, it still asks Intuit once a window.
    let before = answered_at(&s, "POST /oauth2/v1/tokens/bearer").await?;
    let url = format!("{}qbo/disconnected?realmId={}", webhooks_url(&s)?, q.realm);
    for _ in 0..5 {
        let page = reqwest::get(&url).await?;
        assert_eq!(page.status().as_u16(), 200);
    }
    // The check waits out its window (30 s), then runs once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.settle().await?;
    assert_eq!(
        answered_at(&s, "POST /oauth2/v1/tokens/bearer").await? - before,
        1,
        "one check for five openings"
    );
    let still = connections(&s).get(&q.connection, now_ms() / 1000).await?;
    assert_eq!(
        still.map(|c| c.status),
        Some(ConnectionStatus::Active),
        "a forged disconnect"
    );
    assert!(tokens_kept(&s, Provider::HubSpot, &q.portal.to_string()).await?);

    // The app really disconnected inside QuickBooks: Intuit refuses the tokens, so the
    // connection ends and the portal's HubSpot tokens (its only connection) are revoked.
    let disconnected = s
        .control(
            &s.qbo,
            &format!("/_sandbox/realms/{}/disconnect", q.realm),
            json!({}),
        )
        .await?;
    assert_eq!(disconnected["disconnect_url_status"], 200, "{disconnected}");
    status_becomes(
        &s,
        &q,
        ConnectionStatus::Disconnected,
        Duration::from_secs(60),
    )
    .await?;
    eventually(
        Duration::from_secs(20),
        "the HubSpot tokens forgotten",
        || async {
            Ok((!tokens_kept(&s, Provider::HubSpot, &q.portal.to_string()).await?).then_some(()))
        },
    )
    .await?;
    let bad = reqwest::get(format!("{}qbo/disconnected", webhooks_url(&s)?)).await?;
    assert_eq!(bad.status().as_u16(), 400, "no realmId");
    s.stop().await
}

#[tokio::test]
async fn registering_makes_the_apps_subscriptions_exactly_the_files() -> anyhow::Result<()> {
    // The stack registered them once at start; again changes nothing.
    let s = SyncStack::start_with("webhooks-register", |o| o.webhooks = true).await?;
    let wanted = local_stack::webhooks::read_config()?.subscriptions.len();
    let again = local_stack::webhooks::point_sandboxes(&s.stack).await?;
    assert_eq!(
        (
            again.created,
            again.activated,
            again.unchanged,
            again.deactivated
        ),
        (0, 0, wanted, 0),
        "{again:?}"
    );
    assert_eq!(again.target_url, format!("{}hubspot", webhooks_url(&s)?));
    // A subscription the file does not have is switched off, not left delivering.
    let app_id =
        s.stack.manifest.function("WebhooksFunction")?.environment["HUBSPOT_APP_ID"].clone();
    let extra = reqwest::Client::new()
        .post(format!(
            "{}/webhooks/v3/{app_id}/subscriptions?hapikey={}",
            s.hubspot,
            local_stack::sandboxes::HUBSPOT_DEVELOPER_API_KEY
        ))
        .json(&json!({"eventType": "deal.creation", "active": true}))
        .send()
        .await?;
    assert_eq!(extra.status().as_u16(), 201);
    let cleaned = local_stack::webhooks::point_sandboxes(&s.stack).await?;
    assert_eq!(
        (cleaned.deactivated, cleaned.unchanged),
        (1, wanted),
        "{cleaned:?}"
    );
    let active = cleaned
        .subscriptions
        .iter()
        .filter(|s| s["active"] == true)
        .count();
    assert_eq!(active, wanted);
    s.stop().await
}
