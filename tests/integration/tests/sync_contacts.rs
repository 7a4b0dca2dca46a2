//! Contacts ↔ customers end to end (real binaries, both sandboxes, the local AWS endpoint):
//! creates and updates both ways, matching by email, echoes, display names and the taken-name
//! failure with its opt-in disambiguation.

use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use integration_tests::harness::{property, SyncStack};
use serde_json::{json, Value};

const CONTACT: ObjectKind = ObjectKind::Contact;

fn email_of(customer: &Value) -> Option<String> {
    customer["PrimaryEmailAddr"]["Address"]
        .as_str()
        .map(|e| e.trim().to_lowercase())
}

#[tokio::test]
async fn contacts_flow_both_ways_match_by_email_and_echoes_write_nothing() -> anyhow::Result<()> {
    let s = SyncStack::start("contacts").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;

    let ann = p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "Ann Lee", "GivenName": "Ann", "FamilyName": "Lee",
                "PrimaryEmailAddr": {"Address": " Ann.Lee@Example.com "}}),
        )
        .await?;
    let cy = p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "Cy Park", "GivenName": "Cy", "FamilyName": "Park",
                "PrimaryEmailAddr": {"Address": "cy@example.com"}}),
        )
        .await?;
    // The same person on both sides already, with the email in another case.
    p.hubspot_create(
        "contacts",
        json!({"email": "CY@example.com", "firstname": "Cyrus", "lastname": "Park"}),
    )
    .await?;
    let bo = p
        .hubspot_create(
            "contacts",
            json!({"email": "bo@example.com", "firstname": "Bo", "lastname": "Diaz"}),
        )
        .await?;
    s.sync().await?;

    let contacts = p.hubspot_all("contacts").await?;
    let customers = p.qbo_all("Customer").await?;
    assert_eq!(
        (contacts.len(), customers.len()),
        (3, 3),
        "one record per person on each side"
    );
    let ann_contact = p
        .hubspot_with("contacts", "email", "ann.lee@example.com")
        .await?;
    assert_eq!(ann_contact.len(), 1, "the email is trimmed and lower-cased");
    assert_eq!(property(&ann_contact[0], "firstname"), Some("Ann"));
    assert_eq!(
        property(&ann_contact[0], "qbo_customer_id"),
        ann["Id"].as_str()
    );
    let cy_contacts = p
        .hubspot_with("contacts", "email", "cy@example.com")
        .await?;
    assert_eq!(cy_contacts.len(), 1);
    assert_eq!(
        property(&cy_contacts[0], "qbo_customer_id"),
        cy["Id"].as_str(),
        "matched by email and linked, not made twice"
    );
    assert_eq!(
        property(&cy_contacts[0], "firstname"),
        Some("Cy"),
        "a first match in two-way sync takes QuickBooks' values (the conflict default)"
    );
    let bo_customer: Vec<&Value> = customers
        .iter()
        .filter(|c| email_of(c).as_deref() == Some("bo@example.com"))
        .collect();
    assert_eq!(bo_customer.len(), 1);
    assert_eq!(bo_customer[0]["DisplayName"], "Bo Diaz");
    let (synced, failing, _, pending) = p.counts(CONTACT).await?;
    assert_eq!((synced, failing, pending), (3, 0, 0));
    let entry = p
        .entry(
            CONTACT,
            Provider::HubSpot,
            bo["id"].as_str().unwrap_or_default(),
        )
        .await?
        .expect("an entry for the HubSpot contact");
    assert_eq!(
        entry.qbo.id,
        bo_customer[0]["Id"].as_str().map(str::to_owned)
    );
    assert_eq!(entry.match_key.as_deref(), Some("bo@example.com"));
    let bo_contact = p
        .hubspot_with("contacts", "email", "bo@example.com")
        .await?;
    assert_eq!(
        property(&bo_contact[0], "qbo_customer_id"),
        bo_customer[0]["Id"].as_str(),
        "the customer's id is written back to the contact it was made from"
    );
    assert!(
        entry.activity.iter().any(|a| a.action == "created"),
        "{:?}",
        entry.activity
    );

    // Updates on either side arrive on the next round.
    let ann_id = ann["Id"].as_str().unwrap_or_default();
    p.qbo_update(
        "Customer",
        ann_id,
        json!({"PrimaryPhone": {"FreeFormNumber": "555-0101"}}),
    )
    .await?;
    p.hubspot_update(
        "contacts",
        bo["id"].as_str().unwrap_or_default(),
        json!({"lastname": "Diaz-Ruiz"}),
    )
    .await?;
    s.sync().await?;
    let ann_contact = p
        .hubspot_with("contacts", "email", "ann.lee@example.com")
        .await?;
    assert_eq!(property(&ann_contact[0], "phone"), Some("555-0101"));
    let bo_now = p
        .qbo_read(
            "Customer",
            bo_customer[0]["Id"].as_str().unwrap_or_default(),
        )
        .await?;
    assert_eq!(
        (&bo_now["FamilyName"], &bo_now["DisplayName"]),
        (&json!("Diaz-Ruiz"), &json!("Bo Diaz-Ruiz"))
    );

    // Our own writes come back on the next rounds and cause no write.
    let before = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
    assert!(
        before.0 > 0 && before.1 > 0,
        "writes are counted: {before:?}"
    );
    s.sync().await?;
    s.sync().await?;
    let after = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
    assert_eq!(after, before, "quiet rounds wrote to a sandbox");
    assert_eq!(p.counts(CONTACT).await?.0, 3);

    // A link id someone cleared in HubSpot is written again, and nothing else is.
    let bo_id = bo["id"].as_str().unwrap_or_default();
    p.hubspot_update("contacts", bo_id, json!({"qbo_customer_id": ""}))
        .await?;
    let qbo_writes = s.writes(&s.qbo).await?;
    s.sync().await?;
    let bo_contact = p
        .hubspot_with("contacts", "email", "bo@example.com")
        .await?;
    assert_eq!(
        property(&bo_contact[0], "qbo_customer_id"),
        bo_customer[0]["Id"].as_str()
    );
    assert_eq!(
        s.writes(&s.qbo).await?,
        qbo_writes,
        "QuickBooks is not written"
    );
    s.stop().await
}

#[tokio::test]
async fn display_names_come_from_the_company_and_a_taken_name_fails_until_disambiguated(
) -> anyhow::Result<()> {
    let s = SyncStack::start("display-names").await?;
    let p = s.pair().await?;
    p.settings(CONTACT, |c| c.filters.hubspot_to_qbo.clear())
        .await?;
    let company = p
        .hubspot_create("companies", json!({"name": "Acme Corp"}))
        .await?;
    let company = company["id"].as_str().unwrap_or_default().to_owned();
    let mut at_acme = Vec::new();
    for (email, first, last) in [
        ("xia@acme.example", "Xia", "Wu"),
        ("yann@acme.example", "Yann", "Roy"),
    ] {
        let contact = p
            .hubspot_create(
                "contacts",
                json!({"email": email, "firstname": first, "lastname": last}),
            )
            .await?;
        let id = contact["id"].as_str().unwrap_or_default().to_owned();
        p.hubspot_api(
            reqwest::Method::PUT,
            &format!("/crm/v4/objects/contacts/{id}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])),
        )
        .await?;
        at_acme.push((id, format!("{first} {last}")));
    }
    p.hubspot_create(
        "contacts",
        json!({"email": "zoe@solo.example", "firstname": "Zoe", "lastname": "Hart"}),
    )
    .await?;
    s.sync().await?;

    let names: Vec<String> = p
        .qbo_all("Customer")
        .await?
        .iter()
        .filter_map(|c| c["DisplayName"].as_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"Zoe Hart".to_owned()), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "Acme Corp").count(),
        1,
        "the company's name, once: {names:?}"
    );
    let failing = p.entries(CONTACT, LinkStatus::Failing).await?;
    assert_eq!(failing.len(), 1, "the second contact of the company fails");
    let failure = failing[0].failure.clone().expect("a failure");
    assert_eq!(failure.category, "duplicate_display_name");
    assert!(failure.message.contains("Acme Corp"), "{}", failure.message);
    assert_eq!(
        failure.next_retry_at, None,
        "a taken name is not retried by itself"
    );
    let loser = failing[0].hubspot.id.clone().unwrap_or_default();
    let loser_name = at_acme
        .iter()
        .find(|(id, _)| *id == loser)
        .map(|(_, name)| name.clone())
        .unwrap_or_default();

    // Another round changes nothing: the failure waits for a person.
    s.sync().await?;
    assert_eq!(p.entries(CONTACT, LinkStatus::Failing).await?.len(), 1);

    // Turning disambiguation on tries it again, with the company and the person's name.
    p.settings(CONTACT, |c| c.disambiguate_display_names = true)
        .await?;
    s.sync().await?;
    let names: Vec<String> = p
        .qbo_all("Customer")
        .await?
        .iter()
        .filter_map(|c| c["DisplayName"].as_str().map(str::to_owned))
        .collect();
    let expected = format!("Acme Corp ({loser_name})");
    assert!(names.contains(&expected), "{expected} in {names:?}");
    assert_eq!(p.counts(CONTACT).await?.1, 0, "nothing fails any more");

    // An update of the disambiguated contact keeps its name (no second collision).
    p.hubspot_update("contacts", &loser, json!({"phone": "555-0199"}))
        .await?;
    s.sync().await?;
    let customer = p
        .qbo_all("Customer")
        .await?
        .into_iter()
        .find(|c| c["DisplayName"] == expected.as_str())
        .expect("the disambiguated customer");
    assert_eq!(customer["PrimaryPhone"]["FreeFormNumber"], "555-0199");
    assert_eq!(p.counts(CONTACT).await?.1, 0);

    // Without names from companies, a new contact of the company is named after the person.
    p.settings(CONTACT, |c| c.display_name_from_company = false)
        .await?;
    let new = p
        .hubspot_create(
            "contacts",
            json!({"email": "una@acme.example", "firstname": "Una", "lastname": "Berg"}),
        )
        .await?;
    let id = new["id"].as_str().unwrap_or_default();
    p.hubspot_api(
        reqwest::Method::PUT,
        &format!("/crm/v4/objects/contacts/{id}/associations/companies/{company}"),
        Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])),
    )
    .await?;
    s.sync().await?;
    assert!(p
        .qbo_all("Customer")
        .await?
        .iter()
        .any(|c| c["DisplayName"] == "Una Berg"));
    s.stop().await
}

#[tokio::test]
async fn a_contact_hubspot_refuses_fails_alone_and_links_on_its_retry() -> anyhow::Result<()> {
    let s = SyncStack::start("contact-conflict").await?;
    let p = s.pair().await?;
    let held = p
        .hubspot_create(
            "contacts",
            json!({"email": "held@example.com", "firstname": "Held"}),
        )
        .await?;
    for (name, email) in [
        ("Free One", "free1@example.com"),
        ("Held Here", "held@example.com"),
        ("Free Two", "free2@example.com"),
    ] {
        p.qbo_create(
            "Customer",
            json!({"DisplayName": name, "PrimaryEmailAddr": {"Address": email}}),
        )
        .await?;
    }
    // The lookup by email misses the contact that holds one of them (as if it were made a
    // moment later): HubSpot refuses the batch of creates as a whole.
    let missed = s
        .add_fault(
            &s.hubspot,
            json!({"method": "POST", "path": "/crm/v3/objects/contacts/batch/read",
                "action": "respond", "status": 200,
                "body": {"status": "COMPLETE", "results": [], "startedAt": "2026-01-01T00:00:00Z",
                    "completedAt": "2026-01-01T00:00:00Z"}, "times": 1}),
        )
        .await?;
    // And HubSpot refuses that batch as a whole (as it may), not per record.
    s.add_fault(
        &s.hubspot,
        json!({"method": "POST", "path": "/crm/v3/objects/contacts/batch/upsert",
            "action": "respond", "status": 409,
            "body": {"status": "error", "category": "CONFLICT",
                "message": "Contact already exists. Existing ID: 10001"}, "times": 1}),
    )
    .await?;
    s.sync().await?;
    let left = s.faults(&s.hubspot).await?;
    assert!(
        !left.iter().any(|r| r["id"] == missed),
        "the one-time fault was used: {left:?}"
    );
    let upserts = &s.counters(&s.hubspot).await?["POST /crm/v3/objects/contacts/batch/upsert"];
    assert_eq!(
        (
            upserts["count"].as_u64(),
            upserts["by_status"]["409"].as_u64()
        ),
        (Some(4), Some(1)),
        "the batch refused as a whole, then each record alone: {upserts}"
    );
    let contacts = p.hubspot_all("contacts").await?;
    assert_eq!(contacts.len(), 3, "the two free ones made, nothing doubled");
    let failing = p.entries(CONTACT, LinkStatus::Failing).await?;
    assert_eq!(failing.len(), 1, "only the refused one fails");
    let failure = failing[0].failure.clone().expect("a reason");
    assert!(
        failure.category == "duplicate_record"
            && failure.message.contains("already exists")
            && failure.next_retry_at.is_some(),
        "{failure:?}"
    );

    // Its retry (made due now) looks the email up again and links the contact that holds it.
    assert_eq!(p.retry_now(CONTACT, "duplicate_record").await?, 1);
    s.sync().await?;
    let contacts = p.hubspot_all("contacts").await?;
    assert_eq!(contacts.len(), 3);
    let held_now = contacts
        .iter()
        .find(|c| c["id"] == held["id"])
        .expect("still there");
    assert!(property(held_now, "qbo_customer_id").is_some());
    assert_eq!(
        p.counts(CONTACT).await?,
        (3, 0, 0, 0),
        "the contact's own left-out entry gave way to the link"
    );

    // The common case: a contact the HubSpot filter leaves out is linked, not doubled, by the
    // customer with its email.
    let left_out = p
        .hubspot_create("contacts", json!({"email": "later@example.com"}))
        .await?;
    s.sync().await?;
    assert_eq!(p.counts(CONTACT).await?.2, 1, "left out by the filter");
    p.qbo_create(
        "Customer",
        json!({"DisplayName": "Later", "PrimaryEmailAddr": {"Address": "later@example.com"}}),
    )
    .await?;
    s.sync().await?;
    let contacts = p
        .hubspot_with("contacts", "email", "later@example.com")
        .await?;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["id"], left_out["id"]);
    assert!(property(&contacts[0], "qbo_customer_id").is_some());
    assert_eq!(p.counts(CONTACT).await?, (4, 0, 0, 0));
    s.stop().await
}
