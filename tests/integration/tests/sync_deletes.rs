//! Deletions and merges end to end (real binaries, both sandboxes, the local AWS endpoint),
//! per the policy in the README: a record made inactive, archived or merged away keeps its
//! link, left out with the reason; nothing a person removed is made again, nothing is left
//! dangling, and a record made active again syncs again.

use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use integration_tests::harness::{property, Pair, SyncStack};
use serde_json::json;

const CONTACT: ObjectKind = ObjectKind::Contact;
const PRODUCT: ObjectKind = ObjectKind::Product;

/// QBO customers synced to HubSpot contacts: (customer id, contact id) per email.
async fn linked(
    s: &SyncStack,
    p: &Pair<'_>,
    people: &[(&str, &str)],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut customers = Vec::new();
    for (name, email) in people {
        let customer = p
            .qbo_create(
                "Customer",
                json!({"DisplayName": name, "GivenName": name, "PrimaryEmailAddr": {"Address": email}}),
            )
            .await?;
        customers.push(customer["Id"].as_str().unwrap_or_default().to_owned());
    }
    s.sync().await?;
    let mut pairs = Vec::new();
    for ((_, email), customer) in people.iter().zip(customers) {
        let contact = p.hubspot_with("contacts", "email", email).await?;
        anyhow::ensure!(contact.len() == 1, "{email} reached HubSpot once");
        pairs.push((
            customer,
            contact[0]["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(pairs)
}

#[tokio::test]
async fn inactive_and_archived_records_are_left_out_and_never_made_again() -> anyhow::Result<()> {
    let s = SyncStack::start("deletes").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let people = linked(
        &s,
        &p,
        &[("Ina", "ina@gone.example"), ("Arlo", "arlo@gone.example")],
    )
    .await?;
    let (ina_customer, ina_contact) = &people[0];
    let (arlo_customer, arlo_contact) = &people[1];

    // Made inactive in QuickBooks: the link is left out; HubSpot edits do not bring it back.
    p.qbo_update("Customer", ina_customer, json!({"Active": false}))
        .await?;
    s.sync().await?;
    let entry = p
        .entry(CONTACT, Provider::Qbo, ina_customer)
        .await?
        .expect("the entry stays");
    assert_eq!(entry.status, LinkStatus::Excluded);
    assert_eq!(
        entry.exclusion.as_deref(),
        Some("made inactive in QuickBooks")
    );
    assert!(entry.qbo.gone && entry.hubspot.id.as_deref() == Some(ina_contact.as_str()));
    let qbo_writes = s.writes(&s.qbo).await?;
    p.hubspot_update("contacts", ina_contact, json!({"phone": "555-0110"}))
        .await?;
    s.sync().await?;
    assert_eq!(
        s.writes(&s.qbo).await?,
        qbo_writes,
        "nothing is written to QuickBooks"
    );
    let customers = p.qbo_all("Customer").await?;
    assert_eq!(
        customers
            .iter()
            .filter(|c| c["PrimaryEmailAddr"]["Address"] == "ina@gone.example")
            .count(),
        1,
        "no second customer"
    );
    assert_eq!(p.qbo_read("Customer", ina_customer).await?["Active"], false);

    // Made active again (and edited): it syncs again.
    p.qbo_update(
        "Customer",
        ina_customer,
        json!({"Active": true, "GivenName": "Ina2"}),
    )
    .await?;
    s.sync().await?;
    let entry = p
        .entry(CONTACT, Provider::Qbo, ina_customer)
        .await?
        .expect("entry");
    assert_eq!(entry.status, LinkStatus::Synced);
    assert!(!entry.qbo.gone);
    let ina = p
        .hubspot_with("contacts", "email", "ina@gone.example")
        .await?;
    assert_eq!(property(&ina[0], "firstname"), Some("Ina2"));

    // Archived in HubSpot: a QuickBooks edit does not make the contact again.
    p.hubspot_archive("contacts", arlo_contact).await?;
    p.qbo_update("Customer", arlo_customer, json!({"GivenName": "Arlo2"}))
        .await?;
    s.sync().await?;
    assert!(
        p.hubspot_with("contacts", "email", "arlo@gone.example")
            .await?
            .is_empty(),
        "not made again"
    );
    let entry = p
        .entry(CONTACT, Provider::Qbo, arlo_customer)
        .await?
        .expect("entry");
    assert_eq!(
        (entry.status, entry.exclusion.as_deref(), entry.hubspot.gone),
        (LinkStatus::Excluded, Some("archived in HubSpot"), true)
    );
    let hubspot_writes = s.writes(&s.hubspot).await?;
    p.qbo_update("Customer", arlo_customer, json!({"GivenName": "Arlo3"}))
        .await?;
    s.sync().await?;
    assert_eq!(
        s.writes(&s.hubspot).await?,
        hubspot_writes,
        "and later edits write nothing"
    );
    assert!(p
        .hubspot_with("contacts", "email", "arlo@gone.example")
        .await?
        .is_empty());

    // Items made inactive are left out too; their products stay.
    let item = p
        .qbo_create(
            "Item",
            json!({"Name": "Old thing", "Sku": "OLD-1", "Type": "Service", "UnitPrice": 2,
                "IncomeAccountRef": {"value": "6"}}),
        )
        .await?;
    s.sync().await?;
    assert_eq!(
        p.hubspot_with("products", "hs_sku", "OLD-1").await?.len(),
        1
    );
    p.qbo_update(
        "Item",
        item["Id"].as_str().unwrap_or_default(),
        json!({"Active": false}),
    )
    .await?;
    s.sync().await?;
    let entry = p
        .entry(
            PRODUCT,
            Provider::Qbo,
            item["Id"].as_str().unwrap_or_default(),
        )
        .await?
        .expect("entry");
    assert_eq!(
        entry.exclusion.as_deref(),
        Some("made inactive in QuickBooks")
    );
    assert_eq!(
        p.hubspot_with("products", "hs_sku", "OLD-1").await?.len(),
        1
    );
    s.stop().await
}

#[tokio::test]
async fn merged_contacts_keep_one_link_and_release_the_other() -> anyhow::Result<()> {
    let s = SyncStack::start("merges").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let people = linked(
        &s,
        &p,
        &[
            ("Kim", "kim@merge.example"),
            ("Kimberly", "kim.old@merge.example"),
        ],
    )
    .await?;
    let (kim_customer, kim_contact) = &people[0];
    let (old_customer, old_contact) = &people[1];
    p.hubspot_update("contacts", old_contact, json!({"phone": "555-0123"}))
        .await?;
    s.sync().await?;
    let customers_before = p.qbo_all("Customer").await?.len();

    let merged = p.hubspot_merge(kim_contact, old_contact).await?;
    let merged_id = merged["id"].as_str().unwrap_or_default().to_owned();
    assert!(merged_id != *kim_contact && merged_id != *old_contact);
    s.sync().await?;

    // The merged contact takes over the link of the email it kept, with the merged values.
    let kept = p
        .entry(CONTACT, Provider::HubSpot, &merged_id)
        .await?
        .expect("the merged contact holds a link");
    assert_eq!(kept.qbo.id.as_deref(), Some(kim_customer.as_str()));
    assert_eq!(kept.status, LinkStatus::Synced);
    assert!(
        kept.activity.iter().any(|a| a.action == "merged"),
        "{:?}",
        kept.activity
    );
    let kim = p.qbo_read("Customer", kim_customer).await?;
    assert_eq!(
        kim["PrimaryPhone"]["FreeFormNumber"], "555-0123",
        "the merged contact's values reach its customer"
    );
    // The other link is released, left out, its customer untouched.
    let released = p
        .entry(CONTACT, Provider::Qbo, old_customer)
        .await?
        .expect("the released entry stays");
    assert_eq!(released.status, LinkStatus::Excluded);
    assert!(released.hubspot.gone && released.match_key.is_none());
    assert!(released
        .exclusion
        .unwrap_or_default()
        .contains(&format!("merged into HubSpot record {merged_id}")),);
    assert_eq!(
        p.qbo_all("Customer").await?.len(),
        customers_before,
        "no customer made"
    );
    let contacts = p.hubspot_all("contacts").await?;
    assert_eq!(contacts.len(), 1, "one contact: the merged one");

    // Edits of the released customer make no contact; edits of the kept one reach the merge.
    p.qbo_update("Customer", old_customer, json!({"GivenName": "Kimberly2"}))
        .await?;
    p.qbo_update("Customer", kim_customer, json!({"FamilyName": "Stone"}))
        .await?;
    s.sync().await?;
    let contacts = p.hubspot_all("contacts").await?;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["id"], merged_id.as_str());
    assert_eq!(property(&contacts[0], "lastname"), Some("Stone"));
    assert_eq!(
        property(&contacts[0], "qbo_customer_id"),
        Some(kim_customer.as_str())
    );
    s.stop().await
}
