//! Invoice sync under the engine's reliability faults (real binaries, both sandboxes, the local
//! AWS endpoint): 429s, 5xx answers, answers dropped after the write was applied, duplicate SQS
//! deliveries and a worker killed between a HubSpot write and its record, on invoices, line
//! items, payments and notes both ways. Afterwards, through the sandboxes' APIs: each invoice,
//! line, payment and note exists once on each side.

use std::time::{Duration, Instant};

use hubspot_qbo_core::domain::{Direction, ObjectKind};
use integration_tests::harness::{duplicates, property, SyncStack};
use serde_json::{json, Value};

const INVOICE: ObjectKind = ObjectKind::Invoice;
const FROM_QUICKBOOKS: usize = 120;
const FROM_HUBSPOT: usize = 30;

#[tokio::test]
async fn invoices_payments_and_notes_are_made_once_through_faults_and_a_crash() -> anyhow::Result<()>
{
    let s = SyncStack::start_with("invoice-reliability", |o| o.duplicate_deliveries = 0.2).await?;
    let p = s.pair().await?;
    p.settings(INVOICE, |i| {
        i.direction = Direction::TwoWay;
        i.custom_line_item_income_account = Some("5".into());
    })
    .await?;
    p.settings(ObjectKind::Contact, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let customer = p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "Steady Co", "PrimaryEmailAddr": {"Address": "ap@steady.example"}}),
        )
        .await?;
    let customer_id = customer["Id"].as_str().unwrap_or_default().to_owned();
    s.sync().await?;
    let contact = p
        .hubspot_with("contacts", "email", "ap@steady.example")
        .await?;
    let contact = contact[0]["id"].as_str().unwrap_or_default().to_owned();

    // Invoices made in QuickBooks, every other one part paid.
    let line = |qty: u32| {
        json!({"Amount": qty * 100, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": qty, "UnitPrice": 100}})
    };
    let mut invoice_ids = Vec::new();
    for chunk in (0..FROM_QUICKBOOKS).collect::<Vec<_>>().chunks(30) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"bId": i.to_string(), "operation": "create",
                "Invoice": {"CustomerRef": {"value": customer_id}, "Line": [line(1), line(2)]}})
            })
            .collect();
        let answer = p.qbo_batch(json!({"BatchItemRequest": items})).await?;
        for item in answer["BatchItemResponse"].as_array().into_iter().flatten() {
            invoice_ids.push(
                item["Invoice"]["Id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    anyhow::ensure!(
        invoice_ids.len() == FROM_QUICKBOOKS,
        "made {}",
        invoice_ids.len()
    );
    let paid: Vec<&String> = invoice_ids.iter().step_by(2).collect();
    for chunk in paid.chunks(30) {
        let items: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"bId": i.to_string(), "operation": "create",
                "Payment": {"CustomerRef": {"value": customer_id}, "TotalAmt": 50,
                    "Line": [{"Amount": 50, "LinkedTxn": [{"TxnId": id, "TxnType": "Invoice"}]}]}})
            })
            .collect();
        p.qbo_batch(json!({"BatchItemRequest": items})).await?;
    }
    // Invoices made in HubSpot.
    for i in 0..FROM_HUBSPOT {
        let lines = [json!({"name": format!("Work {i}"), "quantity": "1", "price": "10"})];
        p.hubspot_invoice(&contact, &lines, json!({}), "open")
            .await?;
    }

    // The first note batch is applied and its answer held: the worker dies meanwhile.
    let crash = s
        .add_fault(
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v3/objects/notes/batch/create",
                "action": "delay_answer", "latency_ms": 4000, "times": 1}),
        )
        .await?;
    let throttled = json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT", "category": "RATE_LIMITS", "policyName": "TEN_SECONDLY_ROLLING"});
    let mut injected = Vec::new();
    for (sandbox, rule) in [
        (
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v3/objects/*/batch/*", "action": "respond",
            "status": 429, "headers": {"Retry-After": "1"}, "body": throttled, "probability": 0.08}),
        ),
        (
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v3/objects/*/batch/upsert",
            "action": "drop_response", "probability": 0.1}),
        ),
        (
            &s.hubspot,
            // The next note batch after the crash: made, its answer lost.
            json!({"method": "POST", "path": "/crm/v3/objects/notes/batch/create",
            "action": "drop_response", "times": 1}),
        ),
        (
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v4/associations/*", "action": "respond",
            "status": 502, "body": "Bad Gateway", "probability": 0.05}),
        ),
        (
            &s.qbo,
            json!({"method": "POST", "path": "/v3/company/*/invoice", "action": "drop_response",
            "probability": 0.3}),
        ),
        (
            &s.qbo,
            json!({"method": "POST", "path": "/v3/company/*/invoice", "action": "respond",
            "status": 503, "body": "Service Unavailable", "probability": 0.1}),
        ),
    ] {
        injected.push((sandbox.clone(), s.add_fault(sandbox, rule).await?));
    }
    let worker = s.stack.function("ObjectSyncFunction")?.clone();
    let before_crash = worker.pids();
    s.round().await?;
    let waited = Instant::now();
    while s.faults(&s.hubspot).await?.iter().any(|r| r["id"] == crash) {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(180),
            "no note batch was sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.kill_instances();
    s.settle().await?;
    for _ in 0..2 {
        s.sync().await?;
    }
    let mut fired = Vec::new();
    for sandbox in [&s.qbo, &s.hubspot] {
        for rule in s.faults(sandbox).await? {
            fired.push((
                sandbox.clone(),
                rule["id"].as_u64().unwrap_or_default(),
                rule["hits"].as_u64().unwrap_or_default(),
            ));
        }
        s.clear_faults(sandbox).await?;
    }
    // A rule that fires a given number of times leaves the list once it has.
    for (sandbox, id) in &injected {
        let hits = fired
            .iter()
            .find(|(s, i, _)| s == sandbox && i == id)
            .map_or(u64::MAX, |f| f.2);
        assert!(hits > 0, "fault {id} of {sandbox} never fired: {fired:?}");
    }
    assert_ne!(worker.pids(), before_crash, "the worker was replaced");

    // Without faults the rounds go on until every invoice is synced.
    let deadline = Instant::now();
    loop {
        // As their time coming would.
        for category in [
            "rate_limited",
            "hubspot_unavailable",
            "quickbooks_unavailable",
        ] {
            p.retry_now(INVOICE, category).await?;
        }
        s.sync().await?;
        let (synced, failing, _, pending) = p.counts(INVOICE).await?;
        if synced == FROM_QUICKBOOKS + FROM_HUBSPOT && pending == 0 {
            break;
        }
        anyhow::ensure!(
            deadline.elapsed() < Duration::from_secs(300),
            "invoices did not converge: {synced} synced, {failing} failing, {pending} pending: {:?}",
            p.entries(INVOICE, hubspot_qbo_core::ledger::LinkStatus::Failing).await?.iter().map(|e| e.failure.clone()).collect::<Vec<_>>()
        );
    }

    let invoices = p.hubspot_all("invoices").await?;
    assert_eq!(
        invoices.len(),
        FROM_QUICKBOOKS + FROM_HUBSPOT,
        "each invoice once in HubSpot"
    );
    let qbo_ids: Vec<&str> = invoices
        .iter()
        .filter_map(|i| property(i, "qbo_invoice_id"))
        .collect();
    assert_eq!(
        qbo_ids.len(),
        FROM_QUICKBOOKS + FROM_HUBSPOT,
        "every one linked"
    );
    assert!(duplicates(qbo_ids.iter().copied()).is_empty());
    let lines = p.hubspot_all("line_items").await?;
    let ours: Vec<&str> = lines
        .iter()
        .filter_map(|l| property(l, "qbo_line_id"))
        .collect();
    assert_eq!(ours.len(), 2 * FROM_QUICKBOOKS, "each QuickBooks line once");
    assert!(duplicates(ours.iter().copied()).is_empty());
    let payments = p.hubspot_all("commerce_payments").await?;
    let keys: Vec<&str> = payments
        .iter()
        .filter_map(|l| property(l, "qbo_payment_key"))
        .collect();
    assert_eq!(keys.len(), paid.len(), "each payment once");
    let notes = p.hubspot_all("notes").await?;
    let markers: Vec<&str> = notes
        .iter()
        .filter_map(|n| property(n, "hs_note_body"))
        .filter_map(|b| b.rsplit_once("(QuickBooks payment ").map(|(_, id)| id))
        .collect();
    assert_eq!(
        markers.len(),
        paid.len(),
        "one note per payment, none twice"
    );
    assert!(duplicates(markers.iter().copied()).is_empty());
    let in_qbo = p.qbo_all("Invoice").await?;
    assert_eq!(
        in_qbo.len(),
        FROM_QUICKBOOKS + FROM_HUBSPOT,
        "each HubSpot invoice once in QuickBooks"
    );
    s.stop().await
}
