//! The sync end to end: the real binaries on the local stack, both sandboxes, the local AWS
//! endpoint. The demo company and portal are connected through the install pages; the initial
//! sync runs through the queues (initial-sync request → poll task → pages of changes →
//! object-sync); then edits on either side arrive on the next scheduled round, and the rounds
//! after that write nothing (our own writes are recognised).

use hubspot_qbo_core::domain::ObjectKind;
use integration_tests::harness::{property, SyncStack};
use local_stack::demo::DemoSize;
use serde_json::{json, Value};

#[tokio::test]
async fn a_connected_company_syncs_initially_then_incrementally_and_then_rests(
) -> anyhow::Result<()> {
    let s = SyncStack::start("sync").await?;
    let p = s.demo_pair(DemoSize::default()).await?;
    let customers: Vec<Value> = p
        .qbo_all("Customer")
        .await?
        .into_iter()
        .filter(|c| c["Active"] != false)
        .collect();
    let items = p.qbo_all("Item").await?;
    let with_sku = items
        .iter()
        .filter(|i| i["Sku"].as_str().is_some_and(|s| !s.is_empty()) && i["Active"] != false)
        .count();
    assert!(
        with_sku > 0 && with_sku < items.len(),
        "the demo has items with and without a SKU"
    );

    // The initial sync: every customer becomes a contact, every item with a SKU a product.
    let contacts = p.hubspot_all("contacts").await?;
    let linked = contacts
        .iter()
        .filter(|c| property(c, "qbo_customer_id").is_some())
        .count();
    assert_eq!(linked, customers.len());
    let from_qbo = p
        .hubspot_all("products")
        .await?
        .iter()
        .filter(|p| property(p, "qbo_item_id").is_some())
        .count();
    assert_eq!(from_qbo, with_sku);
    let (synced, failing, _, _) = p.counts(ObjectKind::Contact).await?;
    assert_eq!((synced, failing), (customers.len(), 0));
    let (synced, _, excluded, _) = p.counts(ObjectKind::Product).await?;
    assert_eq!(synced, with_sku);
    assert!(
        excluded >= items.len() - with_sku - items.iter().filter(|i| i["Active"] == false).count()
    );
    let obrien = p
        .hubspot_with("contacts", "email", "siobhan@obriens.example")
        .await?;
    assert_eq!(obrien.len(), 1, "the apostrophe customer");
    assert_eq!(property(&obrien[0], "lastname"), Some("O'Brien"));

    // A change in QuickBooks reaches HubSpot on the next round.
    let target = customers
        .iter()
        .find(|c| c["PrimaryEmailAddr"]["Address"].is_string())
        .ok_or_else(|| anyhow::anyhow!("no customer with an email"))?;
    let answer = p
        .qbo_update(
            "Customer",
            target["Id"].as_str().unwrap_or_default(),
            json!({"GivenName": "Renamed"}),
        )
        .await?;
    assert_eq!(answer["GivenName"], "Renamed");
    let report = s.sync().await?;
    assert_eq!(
        report["poll_tasks"], 3,
        "contacts, products and invoices: {report}"
    );
    let email = target["PrimaryEmailAddr"]["Address"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let renamed = p.hubspot_with("contacts", "email", &email).await?;
    assert_eq!(property(&renamed[0], "firstname"), Some("Renamed"));

    // HubSpot → QuickBooks, once the contacts' filter lets contacts through.
    p.settings(ObjectKind::Contact, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    p.hubspot_create(
        "contacts",
        json!({"email": "new.person@example.com", "firstname": "New", "lastname": "Person"}),
    )
    .await?;
    s.sync().await?;
    assert!(p.qbo_all("Customer").await?.iter().any(|c| {
        c["PrimaryEmailAddr"]["Address"] == "new.person@example.com"
            && c["DisplayName"] == "New Person"
    }));

    // Once everything has arrived, further rounds write nothing on either side.
    let before = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
    assert!(
        before.0 > 0 && before.1 > 0,
        "writes are counted: {before:?}"
    );
    for _ in 0..2 {
        s.sync().await?;
    }
    let after = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
    assert_eq!(
        after, before,
        "quiet rounds wrote to a sandbox (an echo was not recognised)"
    );
    s.stop().await
}
