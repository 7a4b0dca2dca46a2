//! Reading windows past the providers' caps, end to end (real binaries, both sandboxes at
//! their production limits, the local AWS endpoint): more than 1,000 QuickBooks changes between
//! two polls (CDC answers at most 1,000) and more than 10,000 HubSpot records changed in one
//! search window (search pages through at most 10,000). Nothing is missed.

use std::collections::{BTreeMap, BTreeSet};

use hubspot_qbo_core::domain::ObjectKind;
use integration_tests::harness::{property, SyncStack};
use serde_json::{json, Value};

#[tokio::test]
async fn more_than_a_thousand_quickbooks_changes_between_two_polls_all_arrive() -> anyhow::Result<()>
{
    let s = SyncStack::start("windows-qbo").await?;
    let p = s.pair().await?;
    p.qbo_generate(1_500, 0).await?;
    let customers: Vec<Value> = p
        .qbo_all("Customer")
        .await?
        .into_iter()
        .filter(|c| c["Active"] != false)
        .collect();
    // CDC answers at most 1,000 objects: the rest must come from the query that completes it.
    assert!(customers.len() >= 1_400, "{}", customers.len());
    s.sync().await?;
    let linked: BTreeMap<String, usize> = p
        .hubspot_all("contacts")
        .await?
        .iter()
        .filter_map(|c| property(c, "qbo_customer_id").map(str::to_owned))
        .fold(BTreeMap::new(), |mut seen, id| {
            *seen.entry(id).or_default() += 1;
            seen
        });
    let ids: BTreeSet<String> = customers
        .iter()
        .filter_map(|c| c["Id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        linked.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "every customer reached HubSpot"
    );
    assert!(linked.values().all(|n| *n == 1), "none twice");
    // More than 1,000 updates between two polls arrive too.
    let changed: Vec<&Value> = customers.iter().take(1_200).collect();
    let throttle = s.control_get(&s.qbo, "/_sandbox/throttle").await?;
    let mut off = throttle.clone();
    off["enabled"] = Value::Bool(false);
    s.control(&s.qbo, "/_sandbox/throttle", off).await?;
    for chunk in changed.chunks(30) {
        let items: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"bId": i.to_string(), "operation": "update", "Customer": {
                    "Id": c["Id"], "SyncToken": c["SyncToken"], "sparse": true,
                    "GivenName": format!("Changed{}", c["Id"].as_str().unwrap_or_default())}})
            })
            .collect();
        p.qbo_batch(json!({ "BatchItemRequest": items })).await?;
    }
    s.control(&s.qbo, "/_sandbox/throttle", throttle).await?;
    s.sync().await?;
    let by_customer: BTreeMap<String, String> = p
        .hubspot_all("contacts")
        .await?
        .iter()
        .filter_map(|c| {
            Some((
                property(c, "qbo_customer_id")?.to_owned(),
                property(c, "firstname").unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    for customer in changed {
        let id = customer["Id"].as_str().unwrap_or_default();
        assert_eq!(
            by_customer.get(id).map(String::as_str),
            Some(format!("Changed{id}").as_str())
        );
    }
    assert_eq!(
        s.answered(&s.qbo, 429).await?,
        0,
        "our pacing stayed under the limits"
    );
    s.stop().await
}

#[tokio::test]
async fn more_than_ten_thousand_hubspot_changes_in_one_search_window_are_all_read(
) -> anyhow::Result<()> {
    let s = SyncStack::start("windows-hubspot").await?;
    let p = s.pair().await?;
    let contacts: Vec<Value> = (0..10_500)
        .map(|i| json!({"email": format!("w{i}@window.example"), "firstname": "W", "lastname": format!("N{i}")}))
        .collect();
    p.hubspot_create_many("contacts", contacts).await?;
    s.sync().await?;
    // The default filter leaves contacts without a HubSpot invoice out: each is recorded with
    // the reason, so the ledger shows every contact read.
    let (synced, failing, excluded, pending) = p.counts(ObjectKind::Contact).await?;
    assert_eq!((synced, failing, excluded, pending), (0, 0, 10_500, 0));
    let searches = s
        .counters(&s.hubspot)
        .await?
        .get("POST /crm/v3/objects/contacts/search")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        searches["by_status"]["400"].as_u64().unwrap_or(0),
        0,
        "no search paged past the 10,000th result: {searches}"
    );
    assert!(
        searches["count"].as_u64().unwrap_or(0) > 10_500 / 200,
        "{searches}"
    );
    assert_eq!(
        s.answered(&s.hubspot, 429).await?,
        0,
        "our pacing stayed under the limits"
    );
    s.stop().await
}
