//! HubSpot invoices → QuickBooks end to end (two-way invoice sync, opt-in): lines matched to
//! items by product link, then SKU, then the Custom Line Item; the customer synced on demand
//! under the contact sync's rules; S12 updates; S13 edits in QuickBooks that cannot sync back
//! failing with their reason while allowed ones sync; document numbers; and a company outside
//! the US refusing HubSpot invoices until a tax mapping is set.

use hubspot_qbo_core::domain::{Direction, ObjectKind, Provider};
use hubspot_qbo_core::ledger::{LedgerEntry, LinkStatus};
use hubspot_qbo_core::settings::{TaxMapping, TaxRateMapping};
use integration_tests::harness::{property, record_id as id, Pair, SyncStack};
use serde_json::{json, Value};

const INVOICE: ObjectKind = ObjectKind::Invoice;

/// Two-way invoices with the Custom Line Item's income account chosen; HubSpot contacts go to
/// QBO when an invoice needs them.
async fn two_way(p: &Pair<'_>) -> anyhow::Result<()> {
    p.settings(INVOICE, |s| {
        s.direction = Direction::TwoWay;
        s.custom_line_item_income_account = Some("5".into());
    })
    .await?;
    p.settings(ObjectKind::Contact, |s| s.filters.hubspot_to_qbo.clear())
        .await?;
    Ok(())
}

async fn entry(p: &Pair<'_>, hubspot_invoice: &str) -> anyhow::Result<LedgerEntry> {
    p.entry(INVOICE, Provider::HubSpot, hubspot_invoice)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no entry for HubSpot invoice {hubspot_invoice}"))
}

/// The QBO invoice a HubSpot invoice became.
async fn qbo_invoice_of(p: &Pair<'_>, hubspot_invoice: &str) -> anyhow::Result<Value> {
    let entry = entry(p, hubspot_invoice).await?;
    let qbo = entry.qbo.id.ok_or_else(|| {
        anyhow::anyhow!("not in QuickBooks: {:?} {:?}", entry.status, entry.failure)
    })?;
    p.qbo_read("Invoice", &qbo).await
}

fn failure(entry: &LedgerEntry) -> (LinkStatus, String, String) {
    let failure = entry.failure.clone();
    (
        entry.status,
        failure
            .as_ref()
            .map(|f| f.category.clone())
            .unwrap_or_default(),
        failure.map(|f| f.message).unwrap_or_default(),
    )
}

#[tokio::test]
async fn hubspot_invoices_go_to_qbo_once_with_matched_lines_updates_and_guarded_edits(
) -> anyhow::Result<()> {
    let s = SyncStack::start("invoices-to-qbo").await?;
    let p = s.pair().await?;
    two_way(&p).await?;
    let fountain = p
        .qbo_create(
            "Item",
            json!({"Name": "Rock Fountain", "Sku": "RF-1", "Type": "Service", "UnitPrice": 275,
                "IncomeAccountRef": {"value": "5"}}),
        )
        .await?;
    s.sync().await?;
    // An item HubSpot has no product for: matched by the line's SKU.
    let pump = p
        .qbo_create(
            "Item",
            json!({"Name": "Pump", "Sku": "PMP-9", "Type": "Service", "UnitPrice": 30,
                "IncomeAccountRef": {"value": "5"}}),
        )
        .await?;
    let product = p.hubspot_with("products", "hs_sku", "RF-1").await?;
    let buyer = p
        .hubspot_create(
            "contacts",
            json!({"email": "buyer@hs.example", "firstname": "Bea", "lastname": "Buyer"}),
        )
        .await?;
    let lines = [
        json!({"name": "Rock Fountain", "quantity": "1", "price": "275", "hs_product_id": id(&product[0])}),
        json!({"name": "Pump", "quantity": "2", "price": "30", "hs_sku": "pmp-9"}),
        json!({"name": "Setup fee", "quantity": "1", "price": "50"}),
    ];
    let draft = p
        .hubspot_invoice(
            &id(&buyer),
            &lines,
            json!({"hs_due_date": "2026-05-01T00:00:00Z"}),
            "draft",
        )
        .await?;
    let invoice = p
        .hubspot_invoice(
            &id(&buyer),
            &lines,
            json!({"hs_due_date": "2026-05-01T00:00:00Z"}),
            "open",
        )
        .await?;
    s.sync().await?;

    assert!(
        p.entry(INVOICE, Provider::HubSpot, &draft).await?.is_none(),
        "drafts wait"
    );
    let qbo = qbo_invoice_of(&p, &invoice).await?;
    let customers = p.qbo_all("Customer").await?;
    let customer = customers
        .iter()
        .find(|c| c["PrimaryEmailAddr"]["Address"] == "buyer@hs.example")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        qbo["CustomerRef"]["value"], customer["Id"],
        "on the contact's customer, made now"
    );
    let custom_items: Vec<Value> = p
        .qbo_all("Item")
        .await?
        .into_iter()
        .filter(|i| i["Name"] == "Custom Line Item")
        .collect();
    assert_eq!(custom_items.len(), 1);
    assert_eq!(custom_items[0]["IncomeAccountRef"]["value"], "5");
    let booked: Vec<(Value, String)> = qbo["Line"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["DetailType"] == "SalesItemLineDetail")
        .map(|l| {
            (
                l["SalesItemLineDetail"]["ItemRef"]["value"].clone(),
                l["Amount"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        booked,
        [
            (fountain["Id"].clone(), "275".to_owned()),
            (pump["Id"].clone(), "60".to_owned()),
            (custom_items[0]["Id"].clone(), "50".to_owned()),
        ]
    );
    assert_eq!(qbo["DueDate"], "2026-05-01");
    let hs = p
        .hubspot_with("invoices", "qbo_invoice_id", &id(&qbo))
        .await?;
    assert_eq!(
        hs.iter().map(id).collect::<Vec<_>>(),
        std::slice::from_ref(&invoice),
        "the QBO id is written back"
    );

    // Again: nothing made twice.
    s.sync().await?;
    let made_here = |all: Vec<Value>| {
        all.into_iter()
            .filter(|i| i["CustomerRef"]["value"] == customer["Id"])
            .count()
    };
    assert_eq!(made_here(p.qbo_all("Invoice").await?), 1);

    // S12: a HubSpot edit of a mapped field reaches QBO.
    p.hubspot_update(
        "invoices",
        &invoice,
        json!({"hs_due_date": "2026-06-01T00:00:00Z"}),
    )
    .await?;
    s.sync().await?;
    assert_eq!(qbo_invoice_of(&p, &invoice).await?["DueDate"], "2026-06-01");

    // S13: allowed QBO edits sync back; the rest make the invoice fail with the reason.
    let payment = p
        .qbo_create(
            "Payment",
            json!({"CustomerRef": {"value": customer["Id"]}, "TotalAmt": 100,
                "Line": [{"Amount": 100, "LinkedTxn": [{"TxnId": qbo["Id"], "TxnType": "Invoice"}]}]}),
        )
        .await?;
    s.sync().await?;
    let e = entry(&p, &invoice).await?;
    assert_eq!(e.status, LinkStatus::Synced, "{:?}", e.failure);
    let hs = p.hubspot_all("invoices").await?;
    let hs = hs
        .iter()
        .find(|i| id(i) == invoice)
        .cloned()
        .unwrap_or_default();
    assert_eq!(property(&hs, "qbo_invoice_balance"), Some("285"));
    assert_eq!(
        property(&hs, "hs_balance_due"),
        Some("285.00"),
        "the payment is on the invoice"
    );
    let line_ids = p
        .hubspot_associated("invoices", &invoice, "line_items")
        .await?;
    assert_eq!(
        line_ids.len(),
        3,
        "HubSpot's own line items stay as they are"
    );

    // A field and a line's service date changed in QBO: allowed, and the field reaches HubSpot.
    let mut dated = qbo_invoice_of(&p, &invoice).await?["Line"].clone();
    dated[0]["SalesItemLineDetail"]["ServiceDate"] = json!("2026-04-02");
    p.qbo_update(
        "Invoice",
        &id(&qbo),
        json!({"DueDate": "2026-07-01", "Line": dated}),
    )
    .await?;
    s.sync().await?;
    let e = entry(&p, &invoice).await?;
    assert_eq!(e.status, LinkStatus::Synced, "{:?}", e.failure);
    let hs = p.hubspot_all("invoices").await?;
    let due = hs
        .iter()
        .find(|i| id(i) == invoice)
        .and_then(|i| property(i, "hs_due_date"))
        .map(|d| d[..10].to_owned());
    assert_eq!(due.as_deref(), Some("2026-07-01"));

    let lines_now = qbo_invoice_of(&p, &invoice).await?["Line"].clone();
    let mut priced = lines_now.clone();
    priced[0]["SalesItemLineDetail"]["UnitPrice"] = json!(300);
    priced[0]["Amount"] = json!(300);
    let mut added = lines_now.clone();
    if let Some(all) = added.as_array_mut() {
        let extra = all[0].clone();
        all.insert(1, extra);
        for line in all.iter_mut() {
            line.as_object_mut().map(|l| l.remove("Id"));
        }
    }
    let undo = json!({"Line": lines_now.clone(), "TxnTaxDetail": {"TotalTax": 0}});
    for (edit, reason) in [
        (
            json!({"Line": priced}),
            "line prices or quantities were changed",
        ),
        (json!({"Line": added}), "lines were added or removed"),
        (json!({"TxnTaxDetail": {"TotalTax": 5}}), "tax was added"),
    ] {
        p.qbo_update("Invoice", &id(&qbo), edit).await?;
        s.sync().await?;
        let (status, category, message) = failure(&entry(&p, &invoice).await?);
        assert_eq!(
            (status, category.as_str()),
            (LinkStatus::Failing, "edited_in_quickbooks")
        );
        assert!(message.contains(reason), "{message}");
        // Undone in QBO: it syncs again.
        p.qbo_update("Invoice", &id(&qbo), undo.clone()).await?;
        s.sync().await?;
        assert_eq!(
            entry(&p, &invoice).await?.status,
            LinkStatus::Synced,
            "after undoing: {reason}"
        );
    }
    p.qbo_operation("Payment", &id(&payment), "delete").await?;
    s.sync().await?;
    let (status, _, message) = failure(&entry(&p, &invoice).await?);
    assert_eq!(status, LinkStatus::Failing);
    assert!(message.contains("a payment was removed"), "{message}");
    s.stop().await
}

#[tokio::test]
async fn numbers_and_taxes_follow_the_company() -> anyhow::Result<()> {
    let s = SyncStack::start("invoices-to-qbo-rules").await?;
    // Custom transaction numbers on: the HubSpot number is QBO's; a duplicate fails clearly.
    let p = s
        .pair_with(json!({"company": {"country": "US", "custom_txn_numbers": true}}))
        .await?;
    two_way(&p).await?;
    let buyer = p
        .hubspot_create("contacts", json!({"email": "n@numbers.example"}))
        .await?;
    let line = [json!({"name": "Work", "quantity": "1", "price": "10"})];
    let first = p
        .hubspot_invoice(&id(&buyer), &line, json!({"hs_number": "HS-1001"}), "open")
        .await?;
    let second = p
        .hubspot_invoice(&id(&buyer), &line, json!({"hs_number": "HS-1001"}), "open")
        .await?;
    // S15: the lines take their service date from the deal's close date.
    p.settings(INVOICE, |s| {
        s.service_date_property = Some("closedate".into())
    })
    .await?;
    let deal = p
        .hubspot_create(
            "deals",
            json!({"dealname": "Retainer", "closedate": "2026-02-15T00:00:00Z"}),
        )
        .await?;
    p.hubspot_associate("invoices", &first, "deals", &id(&deal))
        .await?;
    s.sync().await?;
    let made = qbo_invoice_of(&p, &first).await?;
    assert_eq!(made["DocNumber"], "HS-1001");
    assert_eq!(
        made["Line"][0]["SalesItemLineDetail"]["ServiceDate"],
        "2026-02-15"
    );
    let (status, category, message) = failure(&entry(&p, &second).await?);
    assert_eq!(
        (status, category.as_str()),
        (LinkStatus::Failing, "duplicate_document_number")
    );
    assert!(message.contains("another number"), "{message}");
    let e = entry(&p, &second).await?;
    assert!(
        e.failure.and_then(|f| f.next_retry_at).is_none(),
        "a person fixes it; no retry loop"
    );

    // Outside the US: refused with the reason, then synced once a tax mapping is set.
    let gb = s.pair_with(json!({"company": {"country": "GB"}})).await?;
    two_way(&gb).await?;
    let buyer = gb
        .hubspot_create("contacts", json!({"email": "uk@vat.example"}))
        .await?;
    let lines = [
        json!({"name": "Consulting", "quantity": "2", "price": "100", "hs_tax_rate_group_id": "zero-rated"}),
        json!({"name": "Travel", "quantity": "1", "price": "40"}),
    ];
    let invoice = gb
        .hubspot_invoice(&id(&buyer), &lines, json!({}), "open")
        .await?;
    s.sync().await?;
    let (status, category, message) = failure(&entry(&gb, &invoice).await?);
    assert_eq!(
        (status, category.as_str()),
        (LinkStatus::Failing, "tax_mapping_needed")
    );
    assert!(message.contains("outside the US"), "{message}");
    gb.settings(INVOICE, |s| {
        s.tax_mapping = Some(TaxMapping {
            default_tax_code: "2".into(),
            rates: vec![TaxRateMapping {
                hubspot: "zero-rated".into(),
                qbo: "4".into(),
            }],
        })
    })
    .await?;
    // A person edits the invoice after setting the mapping: it syncs.
    gb.hubspot_update("invoices", &invoice, json!({"hs_comments": "with VAT"}))
        .await?;
    s.sync().await?;
    let qbo = qbo_invoice_of(&gb, &invoice).await?;
    let codes: Vec<Value> = qbo["Line"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["DetailType"] == "SalesItemLineDetail")
        .map(|l| l["SalesItemLineDetail"]["TaxCodeRef"]["value"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("4"), json!("2")],
        "each line carries its tax code"
    );
    s.stop().await
}
