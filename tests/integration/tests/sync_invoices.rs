//! QuickBooks invoices → HubSpot invoices end to end (real binaries, both sandboxes, the local
//! AWS endpoint): the invoice with its line items and associations, payments moving its
//! balance and status with one timeline note each, voids and deletes, deal properties from a
//! deal's latest invoice, and an invoice whose customer is not synced failing with the reason.

use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use hubspot_qbo_core::settings::{Filter, FilterOperator};
use integration_tests::harness::{property, record_id as id, Pair, SyncStack};
use serde_json::{json, Value};

const INVOICE: ObjectKind = ObjectKind::Invoice;

/// (name, quantity, price, product) of a line item.
type LineSeen<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// The HubSpot invoice of a QBO invoice.
async fn hubspot_invoice(p: &Pair<'_>, qbo_id: &str) -> anyhow::Result<Value> {
    let found = p.hubspot_with("invoices", "qbo_invoice_id", qbo_id).await?;
    anyhow::ensure!(
        found.len() == 1,
        "one HubSpot invoice for {qbo_id}, not {}",
        found.len()
    );
    Ok(found[0].clone())
}

/// (status, amount billed, balance due) of a HubSpot invoice.
fn amounts(invoice: &Value) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        property(invoice, "hs_invoice_status"),
        property(invoice, "hs_amount_billed"),
        property(invoice, "hs_balance_due"),
    )
}

async fn notes_on(p: &Pair<'_>, invoice: &str) -> anyhow::Result<Vec<Value>> {
    let ids = p.hubspot_associated("invoices", invoice, "notes").await?;
    let notes = p.hubspot_all("notes").await?;
    Ok(notes.into_iter().filter(|n| ids.contains(&id(n))).collect())
}

async fn pay(
    p: &Pair<'_>,
    customer: &str,
    invoice: &str,
    amount: f64,
    reference: &str,
) -> anyhow::Result<String> {
    let payment = p
        .qbo_create(
            "Payment",
            json!({"CustomerRef": {"value": customer}, "TotalAmt": amount, "PaymentRefNum": reference,
                "TxnDate": "2026-03-20",
                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]}]}),
        )
        .await?;
    Ok(id(&payment))
}

#[tokio::test]
async fn qbo_invoices_become_hubspot_invoices_with_lines_payments_and_notes() -> anyhow::Result<()>
{
    let s = SyncStack::start("invoices").await?;
    let p = s.pair().await?;
    let customer = p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "Acme Gardens", "PrimaryEmailAddr": {"Address": "ap@acme.example"}}),
        )
        .await?;
    let customer = id(&customer);
    let fountain = p
        .qbo_create(
            "Item",
            json!({"Name": "Rock Fountain", "Sku": "RF-1", "Type": "Service", "UnitPrice": 275,
                "IncomeAccountRef": {"value": "5"}}),
        )
        .await?;
    let labour = p
        .qbo_create(
            "Item",
            json!({"Name": "Labour", "Type": "Service", "UnitPrice": 40, "IncomeAccountRef": {"value": "5"}}),
        )
        .await?;
    s.sync().await?;
    let contact = p
        .hubspot_with("contacts", "email", "ap@acme.example")
        .await?;
    let contact = id(&contact[0]);
    let company = p
        .hubspot_create("companies", json!({"name": "Acme Gardens Inc"}))
        .await?;
    let company = id(&company);
    p.hubspot_api(
        reqwest::Method::PUT,
        &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
        Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])),
    )
    .await?;
    let product = p.hubspot_with("products", "hs_sku", "RF-1").await?;
    let product = id(&product[0]);

    let line = |item: &Value, qty: u32, price: f64| {
        json!({"Amount": f64::from(qty) * price, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"], "name": item["Name"]}, "Qty": qty, "UnitPrice": price}})
    };
    let invoice = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer}, "DueDate": "2026-04-30",
                "Line": [line(&fountain, 1, 275.0), line(&labour, 3, 40.0)]}),
        )
        .await?;
    let invoice_id = id(&invoice);
    let number = invoice["DocNumber"].as_str().unwrap_or_default().to_owned();
    s.sync().await?;

    let hs = hubspot_invoice(&p, &invoice_id).await?;
    let hs_id = id(&hs);
    assert_eq!(amounts(&hs), (Some("open"), Some("395.00"), Some("395.00")));
    assert_eq!(
        (
            property(&hs, "hs_number"),
            property(&hs, "hs_due_date").map(|d| &d[..10]),
            property(&hs, "qbo_invoice_total"),
            property(&hs, "qbo_invoice_recipient"),
        ),
        (
            Some(number.as_str()),
            Some("2026-04-30"),
            Some("395"),
            Some("Acme Gardens")
        )
    );
    assert_eq!(
        p.hubspot_associated("invoices", &hs_id, "contacts").await?,
        std::slice::from_ref(&contact)
    );
    assert_eq!(
        p.hubspot_associated("invoices", &hs_id, "companies")
            .await?,
        std::slice::from_ref(&company)
    );
    let line_ids = p
        .hubspot_associated("invoices", &hs_id, "line_items")
        .await?;
    let lines: Vec<Value> = p
        .hubspot_all("line_items")
        .await?
        .into_iter()
        .filter(|l| line_ids.contains(&id(l)))
        .collect();
    let mut seen: Vec<LineSeen<'_>> = lines
        .iter()
        .map(|l| {
            (
                property(l, "name"),
                property(l, "quantity"),
                property(l, "price"),
                property(l, "hs_product_id"),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (Some("Labour"), Some("3"), Some("40"), None),
            (
                Some("Rock Fountain"),
                Some("1"),
                Some("275"),
                Some(product.as_str())
            ),
        ],
        "one line item per line, linked to the synced product when the item is linked"
    );
    assert_eq!(
        p.entry(INVOICE, Provider::Qbo, &invoice_id)
            .await?
            .map(|e| e.status),
        Some(LinkStatus::Synced)
    );

    // A partial payment: the balance follows, one note tells it.
    let first = pay(&p, &customer, &invoice_id, 100.0, "PMT-1").await?;
    s.sync().await?;
    let hs = hubspot_invoice(&p, &invoice_id).await?;
    assert_eq!(amounts(&hs), (Some("open"), Some("395.00"), Some("295.00")));
    assert_eq!(property(&hs, "qbo_invoice_balance"), Some("295"));
    let notes = notes_on(&p, &hs_id).await?;
    assert_eq!(notes.len(), 1);
    let body = property(&notes[0], "hs_note_body").unwrap_or_default();
    assert!(
        body.contains("USD 100.00") && body.contains("2026-03-20") && body.contains("PMT-1"),
        "amount, date and reference: {body}"
    );
    assert_eq!(
        p.hubspot_associated("notes", &id(&notes[0]), "contacts")
            .await?,
        std::slice::from_ref(&contact)
    );

    // Polling again, and a retried message, change nothing.
    s.sync().await?;
    assert_eq!(notes_on(&p, &hs_id).await?.len(), 1, "no note twice");

    // Paid in full: HubSpot shows it paid; removing the payment takes it back.
    let second = pay(&p, &customer, &invoice_id, 295.0, "PMT-2").await?;
    s.sync().await?;
    let hs = hubspot_invoice(&p, &invoice_id).await?;
    assert_eq!(amounts(&hs), (Some("paid"), Some("395.00"), Some("0.00")));
    assert_eq!(notes_on(&p, &hs_id).await?.len(), 2);
    p.qbo_operation("Payment", &second, "delete").await?;
    s.sync().await?;
    let hs = hubspot_invoice(&p, &invoice_id).await?;
    assert_eq!(amounts(&hs), (Some("open"), Some("395.00"), Some("295.00")));
    let payments = p
        .hubspot_associated("invoices", &hs_id, "commerce_payments")
        .await?;
    assert_eq!(
        payments.len(),
        1,
        "the removed payment's HubSpot payment is archived"
    );
    assert!(!first.is_empty());

    // Voided: stays, as voided. Deleted: archived, and never brought back.
    let voided = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer}, "Line": [line(&labour, 1, 40.0)]}),
        )
        .await?;
    let deleted = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer}, "Line": [line(&labour, 2, 40.0)]}),
        )
        .await?;
    s.sync().await?;
    let deleted_hs = id(&hubspot_invoice(&p, &id(&deleted)).await?);
    p.qbo_operation("Invoice", &id(&voided), "void").await?;
    p.qbo_operation("Invoice", &id(&deleted), "delete").await?;
    s.sync().await?;
    let hs_voided = hubspot_invoice(&p, &id(&voided)).await?;
    assert_eq!(property(&hs_voided, "hs_invoice_status"), Some("voided"));
    assert!(
        p.hubspot_with("invoices", "qbo_invoice_id", &id(&deleted))
            .await?
            .is_empty(),
        "the deleted invoice is archived in HubSpot"
    );
    assert!(
        p.hubspot_associated("invoices", &deleted_hs, "line_items")
            .await?
            .is_empty(),
        "with its line items"
    );
    let entry = p.entry(INVOICE, Provider::Qbo, &id(&deleted)).await?;
    assert_eq!(
        entry.map(|e| (e.status, e.qbo.gone)),
        Some((LinkStatus::Excluded, true))
    );
    s.sync().await?;
    assert!(p
        .hubspot_with("invoices", "qbo_invoice_id", &id(&deleted))
        .await?
        .is_empty());
    s.stop().await
}

#[tokio::test]
async fn deals_take_their_latest_invoice_and_unsynced_customers_fail_with_the_reason(
) -> anyhow::Result<()> {
    let s = SyncStack::start("invoices-deals").await?;
    let p = s.pair().await?;
    let customer = p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "Birch Ltd", "PrimaryEmailAddr": {"Address": "pay@birch.example"}}),
        )
        .await?;
    let customer = id(&customer);
    // Left out of the contact sync by a filter.
    p.settings(ObjectKind::Contact, |settings| {
        settings.filters.qbo_to_hubspot.push(Filter {
            property: "DisplayName".into(),
            operator: FilterOperator::IsNoneOf,
            values: vec!["Walk-in".into()],
        })
    })
    .await?;
    let walk_in = p
        .qbo_create("Customer", json!({"DisplayName": "Walk-in"}))
        .await?;
    let item = p
        .qbo_create(
            "Item",
            json!({"Name": "Consulting", "Type": "Service", "UnitPrice": 100, "IncomeAccountRef": {"value": "5"}}),
        )
        .await?;
    s.sync().await?;
    let line = |qty: u32| {
        json!([{"Amount": qty * 100, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty, "UnitPrice": 100}}])
    };
    let a = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer}, "Line": line(1), "DueDate": "2026-05-01"}),
        )
        .await?;
    let b = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer}, "Line": line(2), "DueDate": "2026-06-01"}),
        )
        .await?;
    let orphan = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": id(&walk_in)}, "Line": line(3)}),
        )
        .await?;
    s.sync().await?;

    let failing = p.entry(INVOICE, Provider::Qbo, &id(&orphan)).await?;
    let failure = failing
        .and_then(|e| e.failure)
        .map(|f| (f.category, f.message));
    assert!(
        failure
            .as_ref()
            .is_some_and(|(c, m)| c == "customer_not_synced" && m.contains("Walk-in")),
        "{failure:?}"
    );
    assert!(p
        .hubspot_with("invoices", "qbo_invoice_id", &id(&orphan))
        .await?
        .is_empty());
    // Once the customer syncs, the retry sweep brings the invoice.
    p.settings(ObjectKind::Contact, |settings| {
        settings.filters.qbo_to_hubspot.clear()
    })
    .await?;
    p.qbo_update("Customer", &id(&walk_in), json!({"Notes": "now synced"}))
        .await?;
    s.sync().await?;
    p.retry_now(INVOICE, "customer_not_synced").await?;
    s.sync().await?;
    hubspot_invoice(&p, &id(&orphan)).await?;

    // A person puts both HubSpot invoices on one deal.
    let deal = p
        .hubspot_create("deals", json!({"dealname": "Birch retainer"}))
        .await?;
    let deal = id(&deal);
    let hs_a = id(&hubspot_invoice(&p, &id(&a)).await?);
    let hs_b = id(&hubspot_invoice(&p, &id(&b)).await?);
    for invoice in [&hs_a, &hs_b] {
        p.hubspot_associate("invoices", invoice, "deals", &deal)
            .await?;
    }
    let deal_properties = |deal: &Value| {
        (
            property(deal, "qbo_invoice_number").map(str::to_owned),
            property(deal, "qbo_invoice_amount_billed").map(str::to_owned),
            property(deal, "qbo_invoice_due_date").map(str::to_owned),
            property(deal, "qbo_invoice_status").map(str::to_owned),
            property(deal, "qbo_invoice_recipient").map(str::to_owned),
        )
    };
    for (edited, due, billed) in [(&a, "2026-05-15", "100.00"), (&b, "2026-06-15", "200.00")] {
        p.qbo_update("Invoice", &id(edited), json!({"DueDate": due}))
            .await?;
        s.sync().await?;
        let deals = p.hubspot_all("deals").await?;
        let found = deals
            .iter()
            .find(|d| id(d) == deal)
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            deal_properties(&found),
            (
                edited["DocNumber"].as_str().map(str::to_owned),
                Some(billed.to_owned()),
                Some(due.to_owned()),
                Some("open".to_owned()),
                Some("Birch Ltd".to_owned())
            ),
            "the deal follows its most recently updated invoice"
        );
    }
    // An invoice made from a deal (the workflow actions record which) is put on it.
    let from_deal = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer}, "Line": line(1)}),
        )
        .await?;
    let other_deal = p
        .hubspot_create("deals", json!({"dealname": "Birch add-on"}))
        .await?;
    p.record_invoice_deal(&id(&from_deal), &id(&other_deal))
        .await?;
    s.sync().await?;
    let hs_from_deal = id(&hubspot_invoice(&p, &id(&from_deal)).await?);
    assert_eq!(
        p.hubspot_associated("invoices", &hs_from_deal, "deals")
            .await?,
        [id(&other_deal)]
    );

    // A payment on an invoice with a deal is told on the deal's timeline too.
    pay(&p, &customer, &id(&a), 100.0, "PMT-9").await?;
    s.sync().await?;
    let notes = notes_on(&p, &hs_a).await?;
    assert_eq!(notes.len(), 1);
    assert_eq!(
        p.hubspot_associated("notes", &id(&notes[0]), "deals")
            .await?,
        [deal]
    );
    s.stop().await
}

#[tokio::test]
async fn a_custom_field_mapping_reaches_the_invoices_synced_before_it() -> anyhow::Result<()> {
    use hubspot_qbo_core::settings::{CustomMapping, FieldKind, MappingDirection};
    let s = SyncStack::start("invoices-custom-fields").await?;
    let p = s
        .pair_with(json!({"company": {"custom_fields": ["Crew #"]}}))
        .await?;
    let customer = p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "Crew Co", "PrimaryEmailAddr": {"Address": "crew@fields.example"}}),
        )
        .await?;
    s.sync().await?;
    let line = json!([{"Amount": 100, "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 100}}]);
    let with_crew = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer["Id"]}, "Line": line,
                "CustomField": [{"DefinitionId": "1", "Type": "StringType", "StringValue": "102"}]}),
        )
        .await?;
    let without = p
        .qbo_create(
            "Invoice",
            json!({"CustomerRef": {"value": customer["Id"]}, "Line": line}),
        )
        .await?;
    s.sync().await?;
    let before = hubspot_invoice(&p, &id(&without)).await?;
    assert_eq!(
        property(&hubspot_invoice(&p, &id(&with_crew)).await?, "crew_number"),
        None
    );

    // A person makes the property and maps QuickBooks' first custom field to it.
    p.hubspot_api(
        reqwest::Method::POST,
        "/crm/v3/properties/invoices",
        Some(
            json!({"name": "crew_number", "label": "Crew #", "type": "string",
            "fieldType": "text", "groupName": "invoiceinformation"}),
        ),
    )
    .await?;
    p.settings(INVOICE, |settings| {
        settings.custom_mappings.push(CustomMapping {
            hubspot_property: "crew_number".into(),
            qbo_field: "CustomField1".into(),
            direction: MappingDirection::QboToHubSpot,
            kind: FieldKind::Text,
        })
    })
    .await?;
    s.sync().await?;
    let crew = hubspot_invoice(&p, &id(&with_crew)).await?;
    assert_eq!(
        property(&crew, "crew_number"),
        Some("102"),
        "the historical invoice re-synced"
    );
    let after = hubspot_invoice(&p, &id(&without)).await?;
    assert!(before["updatedAt"].is_string(), "{before}");
    assert_eq!(
        after["updatedAt"], before["updatedAt"],
        "an invoice without a value is not written again"
    );
    s.stop().await
}
