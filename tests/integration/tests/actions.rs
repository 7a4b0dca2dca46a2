//! Workflow actions end to end: the HubSpot sandbox's workflow runner calls the action
//! functions of the local stack (signed, retried as HubSpot retries), and the QBO sandbox ends
//! up with exactly the documents asked for — or none, with the reason — however often a call
//! is repeated.

use std::time::Duration;

use hubspot_qbo_core::actions::signature::v2_signature;
use hubspot_qbo_core::connection::registry::{ConnectionStatus, Connections};
use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::settings::{Filter, FilterOperator};
use hubspot_qbo_core::store::{keys, ItemKey, Table};
use integration_tests::harness::{
    action_call as call, answered_call, now_ms, record_id as id, signed_call, Pair, SyncStack,
};
use serde_json::{json, Value};

const INVOICE: &str = "ActionCreateInvoiceFunction";
const ESTIMATE: &str = "ActionCreateEstimateFunction";
const SALES_RECEIPT: &str = "ActionCreateSalesReceiptFunction";

/// A stack whose workflow runner retries within the test's patience.
async fn stack(name: &str) -> anyhow::Result<SyncStack> {
    let s = SyncStack::start(name).await?;
    s.control(
        &s.hubspot,
        "/_sandbox/workflows/settings",
        json!({"retry_delays_ms": [200, 400, 800, 1600, 3200, 3200, 3200], "honour_retry_after": false}),
    )
    .await?;
    Ok(s)
}

/// What a deal sells: QBO items with SKUs, a HubSpot product linked to one by SKU only, and
/// the buyer as a HubSpot contact the contact sync lets through.
struct Catalogue {
    design_item: String,
    hosting_item: String,
    design_product: String,
    contact: String,
}

async fn catalogue(p: &Pair<'_>) -> anyhow::Result<Catalogue> {
    p.settings(ObjectKind::Contact, |s| s.filters.hubspot_to_qbo.clear())
        .await?;
    let design_item = id(&p
        .qbo_create(
            "Item",
            json!({"Name": "Design", "Sku": "DES-1", "Type": "Service", "UnitPrice": 150,
                   "IncomeAccountRef": {"value": "6"}}),
        )
        .await?);
    let hosting_item = id(&p
        .qbo_create(
            "Item",
            json!({"Name": "Hosting", "Sku": "HOST-1", "Type": "Service", "UnitPrice": 19.99,
                   "IncomeAccountRef": {"value": "6"}}),
        )
        .await?);
    let design_product = id(&p
        .hubspot_create(
            "products",
            json!({"name": "Design", "price": "150", "hs_sku": "DES-1", "description": "Design work"}),
        )
        .await?);
    let contact = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@engines.example"}),
        )
        .await?);
    Ok(Catalogue {
        design_item,
        hosting_item,
        design_product,
        contact,
    })
}

/// A deal of `lines` bought by a new contact of `email`; answers the deal's id.
async fn deal_of(p: &Pair<'_>, email: &str, lines: &[Value]) -> anyhow::Result<String> {
    let contact = id(&p
        .hubspot_create("contacts", json!({"firstname": "Buyer", "email": email}))
        .await?);
    p.hubspot_sale("deals", json!({"dealname": email}), Some(&contact), lines)
        .await
}

/// Two lines: two of the Design product (its line item takes the product's name, price and
/// SKU) and one Hosting line typed in with its SKU.
fn lines(c: &Catalogue) -> Vec<Value> {
    vec![
        json!({"hs_product_id": c.design_product, "quantity": "2"}),
        json!({"name": "Hosting", "price": "19.99", "quantity": "1", "hs_sku": "HOST-1"}),
    ]
}

fn outputs(execution: &Value) -> &Value {
    &execution["output_fields"]
}

fn output<'e>(execution: &'e Value, name: &str) -> &'e str {
    outputs(execution)[name].as_str().unwrap_or_default()
}

/// The QBO lines of a document as (item, quantity, amount).
fn booked(document: &Value) -> Vec<(String, String, String)> {
    document["Line"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["DetailType"] == "SalesItemLineDetail")
        .map(|l| {
            let detail = &l["SalesItemLineDetail"];
            (
                detail["ItemRef"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                detail["Qty"].to_string(),
                l["Amount"].to_string(),
            )
        })
        .collect()
}

async fn stored(p: &Pair<'_>, table: Table, key: &ItemKey) -> anyhow::Result<Option<Value>> {
    let now = p.stack.services.clock.now_seconds();
    Ok(p.stack
        .services
        .store
        .get(table, key, now)
        .await?
        .map(|item| item.to_value::<Value>())
        .transpose()?)
}

#[tokio::test]
async fn deal_and_quote_actions_make_their_documents_with_defaults_and_inputs() -> anyhow::Result<()>
{
    let s = stack("actions-sales").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Engine website"}),
            Some(&c.contact),
            &lines(&c),
        )
        .await?;

    // A1 from a deal, with payment terms and a memo.
    let run = p
        .run_action(
            INVOICE,
            "DEAL",
            &deal,
            json!({"qboTerm": "2", "memo": "Engine website"}),
        )
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let invoice = p.qbo_read("Invoice", output(&run, "qboDocumentId")).await?;
    let customer = invoice["CustomerRef"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let buyer = p.qbo_read("Customer", &customer).await?;
    assert_eq!(buyer["DisplayName"], "Ada Lovelace", "{buyer}");
    assert_eq!(buyer["PrimaryEmailAddr"]["Address"], "ada@engines.example");
    assert_eq!(
        booked(&invoice),
        vec![
            (c.design_item.clone(), "2".into(), "300".into()),
            (c.hosting_item.clone(), "1".into(), "19.99".into()),
        ],
        "{invoice}"
    );
    assert_eq!(invoice["TotalAmt"], json!(319.99));
    assert_eq!(invoice["SalesTermRef"]["value"], "2");
    assert_eq!(invoice["PrivateNote"], "Engine website");
    assert_eq!(output(&run, "qboDocumentTotal"), "319.99");
    assert_eq!(output(&run, "qboCustomerId"), customer);
    assert_eq!(
        output(&run, "qboDocumentNumber"),
        invoice["DocNumber"].as_str().unwrap_or("?")
    );
    assert!(
        output(&run, "message").starts_with("Created QuickBooks invoice"),
        "{run}"
    );
    // The customer came through the contact sync (new mode): the contact is linked to it.
    let link = p
        .entry(ObjectKind::Contact, Provider::HubSpot, &c.contact)
        .await?;
    assert_eq!(link.and_then(|e| e.qbo.id), Some(customer.clone()));
    // Linked to the enrolled deal, and the invoice's deal recorded for the invoice sync.
    let qbo_invoice = output(&run, "qboDocumentId").to_owned();
    let record = stored(
        &p,
        Table::Ledger,
        &keys::ledger::action_document(
            &p.connection,
            "deals",
            &deal,
            run["callbackId"].as_str().unwrap_or(""),
        ),
    )
    .await?
    .expect("the document is recorded on the deal");
    assert_eq!(record["qbo_id"], qbo_invoice.as_str());
    assert_eq!(record["action"], "invoice");
    let deal_hint = stored(
        &p,
        Table::Ledger,
        &keys::ledger::invoice_deal(&p.connection, &qbo_invoice),
    )
    .await?
    .expect("the invoice's deal is recorded");
    assert_eq!(deal_hint["deal_id"], deal.as_str());
    // The invoice sync brings the invoice to HubSpot, on the deal it was made from.
    s.sync().await?;
    let synced = p
        .hubspot_with("invoices", "qbo_invoice_id", &qbo_invoice)
        .await?;
    assert_eq!(
        synced.len(),
        1,
        "one HubSpot invoice for the QuickBooks one"
    );
    assert_eq!(
        p.hubspot_associated("invoices", &id(&synced[0]), "deals")
            .await?,
        std::slice::from_ref(&deal)
    );

    // A2 from a quote with nothing filled in: the same customer, the company's default terms.
    let quote = p
        .hubspot_sale(
            "quotes",
            json!({"hs_title": "Engine website", "hs_expiration_date": "2027-01-31"}),
            Some(&c.contact),
            &lines(&c)[..1],
        )
        .await?;
    let run = p.run_action(ESTIMATE, "QUOTE", &quote, json!({})).await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let estimate = p
        .qbo_read("Estimate", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(estimate["CustomerRef"]["value"], customer.as_str());
    assert_eq!(
        booked(&estimate),
        vec![(c.design_item.clone(), "2".into(), "300".into())]
    );

    // A3 from the deal, nothing filled in.
    let run = p
        .run_action(SALES_RECEIPT, "DEAL", &deal, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let receipt = p
        .qbo_read("SalesReceipt", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(receipt["TotalAmt"], json!(319.99));
    assert_eq!(receipt["CustomerRef"]["value"], customer.as_str());

    // One customer for the three documents; one document of each kind.
    let customers = p.qbo_all("Customer").await?;
    assert_eq!(
        customers
            .iter()
            .filter(|c| c["DisplayName"] == "Ada Lovelace")
            .count(),
        1
    );
    for (entity, count) in [("Invoice", 1), ("Estimate", 1), ("SalesReceipt", 1)] {
        assert_eq!(p.qbo_all(entity).await?.len(), count, "{entity}");
    }
    s.stop().await
}

#[tokio::test]
async fn legacy_customers_unmatched_items_and_products_made_once() -> anyhow::Result<()> {
    let s = stack("actions-items").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    p.action_settings(|a| {
        a.customer_mode = hubspot_qbo_core::actions::settings::CustomerMode::Legacy
    })
    .await?;
    // A customer of the same name and email exists: legacy mode uses it.
    let existing = id(&p
        .qbo_create(
            "Customer",
            json!({"DisplayName": "A. Lovelace", "GivenName": "Ada", "FamilyName": "Lovelace",
                   "PrimaryEmailAddr": {"Address": "ADA@engines.example"}}),
        )
        .await?);
    let widget = id(&p
        .hubspot_create(
            "products",
            json!({"name": "Widget", "price": "12.50", "hs_sku": "WID-9"}),
        )
        .await?);
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Widgets"}),
            Some(&c.contact),
            &[
                json!({"hs_product_id": widget, "quantity": "4"}),
                json!({"name": "Gasket", "price": "3", "quantity": "2"}),
            ],
        )
        .await?;
    let before = p.qbo_all("Item").await?.len();

    // A8: unmatched lines and "create product" no: nothing is made, and they are named.
    let run = p.run_action(INVOICE, "DEAL", &deal, json!({})).await?;
    assert_eq!(run["state"], "FAIL_CONTINUE", "{run}");
    assert_eq!(output(&run, "errorCode"), "unmatched_items");
    let message = output(&run, "message");
    assert!(
        message.contains("\"Widget\" (SKU WID-9)") && message.contains("\"Gasket\" (no SKU)"),
        "{message}"
    );
    assert!(p.qbo_all("Invoice").await?.is_empty());
    assert_eq!(p.qbo_all("Item").await?.len(), before);

    // "create product" yes: each made once, the product linked to its item.
    let run = p
        .run_action(INVOICE, "DEAL", &deal, json!({"createProducts": "yes"}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let invoice = p.qbo_read("Invoice", output(&run, "qboDocumentId")).await?;
    assert_eq!(
        invoice["CustomerRef"]["value"],
        existing.as_str(),
        "legacy match by name and email"
    );
    assert_eq!(invoice["TotalAmt"], json!(56));
    let items = p.qbo_all("Item").await?;
    assert_eq!(items.len(), before + 2);
    let widget_item = items
        .iter()
        .find(|i| i["Sku"] == "WID-9")
        .expect("the widget item");
    assert_eq!(widget_item["Name"], "Widget");
    let link = p
        .entry(ObjectKind::Product, Provider::HubSpot, &widget)
        .await?;
    assert_eq!(link.and_then(|e| e.qbo.id), Some(id(widget_item)));
    // Another deal of the same products: no new items, the same customer.
    let again = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "More widgets"}),
            Some(&c.contact),
            &[
                json!({"hs_product_id": widget, "quantity": "1"}),
                json!({"name": "Gasket", "price": "3", "quantity": "1"}),
            ],
        )
        .await?;
    let run = p
        .run_action(ESTIMATE, "DEAL", &again, json!({"createProducts": "yes"}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    assert_eq!(p.qbo_all("Item").await?.len(), before + 2);
    assert_eq!(output(&run, "qboCustomerId"), existing);

    // Legacy mode with no match: a customer is made from the contact.
    let grace = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Grace", "lastname": "Hopper", "email": "grace@navy.example"}),
        )
        .await?);
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Compilers"}),
            Some(&grace),
            &lines(&c)[1..],
        )
        .await?;
    let run = p
        .run_action(SALES_RECEIPT, "DEAL", &deal, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let made = p
        .qbo_read("Customer", output(&run, "qboCustomerId"))
        .await?;
    assert_eq!(made["DisplayName"], "Grace Hopper");
    s.stop().await
}

#[tokio::test]
async fn a_call_repeated_concurrently_or_after_a_lost_answer_makes_one_document(
) -> anyhow::Result<()> {
    let s = stack("actions-once").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Once"}),
            Some(&c.contact),
            &lines(&c),
        )
        .await?;
    let url = s.stack.url(INVOICE)?.to_owned();
    let body = call("ap-once-1", p.portal, ("DEAL", &deal), json!({}));
    // Ten copies at once: one runs, the others wait and then get its answer.
    let copies = (0..10).map(|_| answered_call(&url, &body));
    let answers = futures::future::try_join_all(copies).await?;
    let first = &answers[0];
    assert_eq!(first.0, 200);
    assert_eq!(
        first.1["outputFields"]["hs_execution_state"], "SUCCESS",
        "{}",
        first.1
    );
    for answer in &answers {
        assert_eq!(answer, first, "every copy gets the same answer");
    }
    assert_eq!(p.qbo_all("Invoice").await?.len(), 1);

    // The answer to QuickBooks' create is lost after the invoice was made: the call fails
    // passingly, HubSpot's runner tries again, and the same requestid brings back the first
    // invoice instead of a second.
    s.add_fault(
        &s.qbo,
        json!({"method": "POST", "path": "/v3/company/*/invoice", "action": "drop_response", "times": 1}),
    )
    .await?;
    let run = p.run_action(INVOICE, "DEAL", &deal, json!({})).await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    assert_eq!(
        p.qbo_all("Invoice").await?.len(),
        2,
        "one more invoice, for the second execution"
    );
    let faults = s.faults(&s.qbo).await?;
    assert!(
        faults.is_empty() || faults.iter().all(|f| f["hits"] == 1),
        "{faults:?}"
    );
    // Replayed later, the first execution still answers the same and makes nothing.
    let (_, replay) = answered_call(&url, &body).await?;
    assert_eq!(replay, first.1);
    assert_eq!(p.qbo_all("Invoice").await?.len(), 2);
    s.stop().await
}

#[tokio::test]
async fn bad_calls_get_their_documented_error_and_make_nothing() -> anyhow::Result<()> {
    let s = stack("actions-refused").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Refused"}),
            Some(&c.contact),
            &lines(&c),
        )
        .await?;
    let url = s.stack.url(INVOICE)?.to_owned();
    let body = call("ap-bad-1", p.portal, ("DEAL", &deal), json!({}));
    let text = body.to_string();
    let http = reqwest::Client::new();
    // Not HubSpot's: no signature, a wrong one, a stale timestamp.
    let unsigned = http.post(&url).body(text.clone()).send().await?;
    assert_eq!(unsigned.status(), 401);
    assert_eq!(
        unsigned.json::<Value>().await?["category"],
        "missing_signature"
    );
    let forged = http
        .post(&url)
        .header(
            "X-HubSpot-Signature",
            v2_signature("not-the-secret", "POST", &url, text.as_bytes()),
        )
        .header("X-HubSpot-Signature-Version", "v2")
        .body(text.clone())
        .send()
        .await?;
    assert_eq!(forged.status(), 401);
    assert_eq!(
        forged.json::<Value>().await?["category"],
        "invalid_signature"
    );
    let stale = signed_call(&url, &body, now_ms() - 10 * 60 * 1000)
        .send()
        .await?;
    assert_eq!(stale.status(), 401);
    assert_eq!(stale.json::<Value>().await?["category"], "stale_timestamp");
    // Signed but not a call, or too big.
    let malformed = signed_call(&url, &json!({"origin": {"portalId": p.portal}}), now_ms())
        .send()
        .await?;
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await?["category"],
        "malformed_request"
    );
    let huge = call(
        "ap-bad-2",
        p.portal,
        ("DEAL", &deal),
        json!({"memo": "x".repeat(70_000)}),
    );
    let oversized = signed_call(&url, &huge, now_ms()).send().await?;
    assert_eq!(oversized.status(), 413);
    assert_eq!(
        oversized.json::<Value>().await?["category"],
        "payload_too_large"
    );

    // HubSpot's calls that cannot make a document: FAIL_CONTINUE with the reason.
    let other = s.pair().await?;
    let no_contact = p
        .hubspot_sale("deals", json!({"dealname": "Nobody"}), None, &lines(&c))
        .await?;
    let no_lines = p
        .hubspot_sale("deals", json!({"dealname": "Empty"}), Some(&c.contact), &[])
        .await?;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "ap-r-1",
            call("ap-r-1", 424_242, ("DEAL", &deal), json!({})),
            "not_connected",
        ),
        (
            "ap-r-2",
            call(
                "ap-r-2",
                p.portal,
                ("DEAL", &deal),
                json!({"qboAccount": other.realm}),
            ),
            "unknown_account",
        ),
        (
            "ap-r-3",
            call("ap-r-3", p.portal, ("DEAL", &no_contact), json!({})),
            "no_contact",
        ),
        (
            "ap-r-4",
            call("ap-r-4", p.portal, ("DEAL", &no_lines), json!({})),
            "no_line_items",
        ),
        (
            "ap-r-5",
            call(
                "ap-r-5",
                p.portal,
                ("DEAL", &deal),
                json!({"createProducts": "perhaps"}),
            ),
            "invalid_input",
        ),
        (
            "ap-r-6",
            call("ap-r-6", p.portal, ("CONTACT", &c.contact), json!({})),
            "wrong_object",
        ),
        (
            "ap-r-7",
            call(
                "ap-r-7",
                p.portal,
                ("DEAL", &deal),
                json!({"qboCustomer": "999999"}),
            ),
            "customer_not_found",
        ),
    ];
    for (callback, body, code) in &cases {
        let (status, answer) = answered_call(&url, body).await?;
        assert_eq!(status, 200, "{callback}: {answer}");
        assert_eq!(
            answer["outputFields"]["hs_execution_state"], "FAIL_CONTINUE",
            "{callback}: {answer}"
        );
        assert_eq!(
            answer["outputFields"]["errorCode"], *code,
            "{callback}: {answer}"
        );
        assert!(!answer["outputFields"]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty());
    }
    // A contact the contact sync leaves out gets no customer (new mode).
    p.settings(ObjectKind::Contact, |s| {
        s.filters.hubspot_to_qbo = vec![Filter {
            property: "lifecyclestage".into(),
            operator: FilterOperator::IsAnyOf,
            values: vec!["customer".into()],
        }];
    })
    .await?;
    let stranger = id(&p
        .hubspot_create(
            "contacts",
            json!({"firstname": "Eve", "email": "eve@x.example"}),
        )
        .await?);
    let theirs = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Filtered"}),
            Some(&stranger),
            &lines(&c),
        )
        .await?;
    let (_, answer) = answered_call(
        &url,
        &call("ap-r-8", p.portal, ("DEAL", &theirs), json!({})),
    )
    .await?;
    assert_eq!(
        answer["outputFields"]["errorCode"], "contact_excluded",
        "{answer}"
    );

    // A company outside the US, and a disconnected account.
    let uk = s.pair_with(json!({"company": {"country": "GB"}})).await?;
    let uk_deal = deal_of(&uk, "tim@uk.example", &lines(&c)[1..]).await?;
    let (_, answer) = answered_call(
        &url,
        &call("ap-r-9", uk.portal, ("DEAL", &uk_deal), json!({})),
    )
    .await?;
    assert_eq!(
        answer["outputFields"]["errorCode"], "non_us_company",
        "{answer}"
    );
    let connections = Connections::new(s.services.store.clone());
    connections
        .update(
            &other.connection,
            s.services.clock.now_seconds(),
            None,
            |c| {
                c.status = ConnectionStatus::Disconnected;
                true
            },
        )
        .await?;
    let other_deal = deal_of(&other, "al@x.example", &lines(&c)[1..]).await?;
    let (_, answer) = answered_call(
        &url,
        &call(
            "ap-r-10",
            other.portal,
            ("DEAL", &other_deal),
            json!({"qboAccount": other.realm}),
        ),
    )
    .await?;
    assert_eq!(
        answer["outputFields"]["errorCode"], "disconnected",
        "{answer}"
    );

    for pair in [&p, &other, &uk] {
        for entity in ["Invoice", "Estimate", "SalesReceipt"] {
            assert!(
                pair.qbo_all(entity).await?.is_empty(),
                "{entity} made in {}",
                pair.realm
            );
        }
    }
    // A refused execution keeps its answer: the same call again gets it, and still makes nothing.
    let (_, again) = answered_call(&url, &cases[2].1).await?;
    assert_eq!(again["outputFields"]["errorCode"], "no_contact");
    s.stop().await
}

const PAID_INVOICE: &str = "ActionCreatePaidInvoiceFunction";
const EXPENSE: &str = "ActionCreateExpenseFunction";
const REFUND_RECEIPT: &str = "ActionCreateRefundReceiptFunction";

/// A HubSpot payment of `amount` with its fees, associated with `links` (type, id).
async fn hubspot_payment(
    p: &Pair<'_>,
    properties: Value,
    links: &[(&str, &str)],
) -> anyhow::Result<String> {
    let payment = id(&p.hubspot_create("commerce_payments", properties).await?);
    for (to_type, to) in links {
        p.hubspot_associate("commerce_payments", &payment, to_type, to)
            .await?;
    }
    Ok(payment)
}

#[tokio::test]
async fn payment_actions_book_receipts_paid_invoices_fees_and_full_refunds() -> anyhow::Result<()> {
    let s = stack("actions-payments").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    p.action_settings(|a| {
        a.payment_method = Some("3".into());
        a.fee_paid_from_account = Some("1".into());
        a.fee_expense_account = Some("7".into());
        a.refund_from_account = Some("1".into());
    })
    .await?;
    let mut links = vec![("contacts", c.contact.clone())];
    for line in lines(&c) {
        links.push((
            "line_items",
            id(&p.hubspot_create("line_items", line).await?),
        ));
    }
    let links: Vec<(&str, &str)> = links.iter().map(|(t, i)| (*t, i.as_str())).collect();
    let paid = hubspot_payment(
        &p,
        json!({"hs_initial_amount": "319.99", "hs_initiated_date": "2026-11-30T10:00:00Z",
               "hs_processing_fee": "2.90", "hs_platform_fee": "0.50", "hs_payment_source": "payment_link"}),
        &links,
    )
    .await?;
    const PAYMENT: &str = "COMMERCE_PAYMENT";

    // A3: a sales receipt of the payment's lines, paid by the configured method.
    let run = p
        .run_action(SALES_RECEIPT, PAYMENT, &paid, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let receipt = p
        .qbo_read("SalesReceipt", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(receipt["TotalAmt"], json!(319.99));
    assert_eq!(receipt["PaymentMethodRef"]["value"], "3");
    assert_eq!(
        booked(&receipt),
        vec![
            (c.design_item.clone(), "2".into(), "300".into()),
            (c.hosting_item.clone(), "1".into(), "19.99".into()),
        ]
    );
    let buyer = p
        .qbo_read("Customer", output(&run, "qboCustomerId"))
        .await?;
    assert_eq!(buyer["DisplayName"], "Ada Lovelace");

    // A4: an invoice and a payment on it; the invoice is paid.
    let run = p
        .run_action(PAID_INVOICE, PAYMENT, &paid, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let invoice = p.qbo_read("Invoice", output(&run, "qboDocumentId")).await?;
    assert_eq!(invoice["Balance"], json!(0), "{invoice}");
    let payment = p.qbo_read("Payment", output(&run, "qboPaymentId")).await?;
    assert_eq!(payment["TotalAmt"], json!(319.99));
    assert_eq!(payment["Line"][0]["LinkedTxn"][0]["TxnId"], invoice["Id"]);
    assert_eq!(payment["CustomerRef"], invoice["CustomerRef"]);
    assert_eq!(payment["PaymentMethodRef"]["value"], "3");
    // Linked to the enrolled payment, with its QuickBooks payment.
    let record = stored(
        &p,
        Table::Ledger,
        &keys::ledger::action_document(
            &p.connection,
            "commerce_payments",
            &paid,
            run["callbackId"].as_str().unwrap_or(""),
        ),
    )
    .await?
    .expect("the paid invoice is recorded on the payment");
    assert_eq!(record["qbo_id"], invoice["Id"]);
    assert_eq!(record["qbo_payment"], payment["Id"]);

    // A5: the fees as an expense from the configured accounts.
    let run = p.run_action(EXPENSE, PAYMENT, &paid, json!({})).await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let expense = p
        .qbo_read("Purchase", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(expense["TotalAmt"], json!(3.4), "{expense}");
    assert_eq!(expense["AccountRef"]["value"], "1");
    assert_eq!(
        expense["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"],
        "7"
    );

    // A6: refused until the payment is refunded in full, then a refund receipt.
    let run = p
        .run_action(REFUND_RECEIPT, PAYMENT, &paid, json!({}))
        .await?;
    assert_eq!(output(&run, "errorCode"), "partial_refund", "{run}");
    p.hubspot_update(
        "commerce_payments",
        &paid,
        json!({"hs_refunds_amount": "100"}),
    )
    .await?;
    let run = p
        .run_action(REFUND_RECEIPT, PAYMENT, &paid, json!({}))
        .await?;
    assert_eq!(output(&run, "errorCode"), "partial_refund", "{run}");
    assert!(output(&run, "message").contains("only 100"), "{run}");
    assert!(p.qbo_all("RefundReceipt").await?.is_empty());
    p.hubspot_update(
        "commerce_payments",
        &paid,
        json!({"hs_refunds_amount": "319.99"}),
    )
    .await?;
    let run = p
        .run_action(REFUND_RECEIPT, PAYMENT, &paid, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let refund = p
        .qbo_read("RefundReceipt", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(refund["TotalAmt"], json!(319.99));
    assert_eq!(refund["DepositToAccountRef"]["value"], "1");

    // A payment link's payment: its deal gives the contact and the lines.
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Payment link"}),
            Some(&c.contact),
            &lines(&c)[1..],
        )
        .await?;
    let linked = hubspot_payment(
        &p,
        json!({"hs_initial_amount": "19.99", "hs_initiated_date": "2026-11-30T11:00:00Z"}),
        &[("deals", &deal)],
    )
    .await?;
    let run = p
        .run_action(SALES_RECEIPT, PAYMENT, &linked, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let receipt = p
        .qbo_read("SalesReceipt", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(
        booked(&receipt),
        vec![(c.hosting_item.clone(), "1".into(), "19.99".into())]
    );
    // A payment with no lines anywhere: its amount on the item the action names.
    let bare = hubspot_payment(
        &p,
        json!({"hs_initial_amount": "45", "hs_initiated_date": "2026-11-30T12:00:00Z"}),
        &[("contacts", &c.contact)],
    )
    .await?;
    let run = p
        .run_action(SALES_RECEIPT, PAYMENT, &bare, json!({}))
        .await?;
    assert_eq!(output(&run, "errorCode"), "no_line_items", "{run}");
    let run = p
        .run_action(
            SALES_RECEIPT,
            PAYMENT,
            &bare,
            json!({"qboItem": c.design_item}),
        )
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    let receipt = p
        .qbo_read("SalesReceipt", output(&run, "qboDocumentId"))
        .await?;
    assert_eq!(
        booked(&receipt),
        vec![(c.design_item.clone(), "1".into(), "45".into())]
    );

    // A9: a payment made on a HubSpot invoice is not booked as a second sale; its fee is.
    let from_invoice = hubspot_payment(
        &p,
        json!({"hs_initial_amount": "319.99", "hs_initiated_date": "2026-11-30T13:00:00Z",
               "hs_processing_fee": "1", "hs_payment_source": "invoice"}),
        &links,
    )
    .await?;
    let before = (
        p.qbo_all("Invoice").await?.len(),
        p.qbo_all("SalesReceipt").await?.len(),
    );
    for function in [PAID_INVOICE, SALES_RECEIPT] {
        let run = p
            .run_action(function, PAYMENT, &from_invoice, json!({}))
            .await?;
        assert_eq!(run["state"], "FAIL_CONTINUE", "{run}");
        assert_eq!(output(&run, "errorCode"), "invoice_payment", "{run}");
    }
    assert_eq!(
        (
            p.qbo_all("Invoice").await?.len(),
            p.qbo_all("SalesReceipt").await?.len()
        ),
        before
    );
    let run = p
        .run_action(EXPENSE, PAYMENT, &from_invoice, json!({}))
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");
    // A4 takes non-taxable lines only.
    let taxed = id(&p
        .hubspot_create("line_items", json!({"name": "Hosting", "price": "10", "quantity": "1", "hs_sku": "HOST-1", "hs_tax_rate_group_id": "77"}))
        .await?);
    let taxed_payment = hubspot_payment(
        &p,
        json!({"hs_initial_amount": "10", "hs_initiated_date": "2026-11-30T14:00:00Z"}),
        &[("contacts", &c.contact), ("line_items", &taxed)],
    )
    .await?;
    let run = p
        .run_action(PAID_INVOICE, PAYMENT, &taxed_payment, json!({}))
        .await?;
    assert_eq!(output(&run, "errorCode"), "taxable_lines", "{run}");
    // Payment actions do not run on deals, nor deal actions on payments.
    let run = p.run_action(EXPENSE, "DEAL", &deal, json!({})).await?;
    assert_eq!(output(&run, "errorCode"), "wrong_object", "{run}");
    let run = p.run_action(INVOICE, PAYMENT, &paid, json!({})).await?;
    assert_eq!(output(&run, "errorCode"), "wrong_object", "{run}");
    s.stop().await
}

/// Waits for an execution to reach `state` (a BLOCKed one goes on to its callback's).
async fn execution_in(s: &SyncStack, callback: &str, state: &str) -> anyhow::Result<Value> {
    for _ in 0..300 {
        let execution = s.execution(callback).await?;
        if execution["state"] == state {
            return Ok(execution);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "execution {callback} never reached {state}: {}",
        s.execution(callback).await?
    )
}

#[tokio::test]
async fn a_throttled_execution_answers_block_and_completes_through_the_callback_once(
) -> anyhow::Result<()> {
    let s = stack("actions-block").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Throttled"}),
            Some(&c.contact),
            &lines(&c),
        )
        .await?;
    // QuickBooks throttles the create and asks for a minute: more than HubSpot waits.
    s.add_fault(
        &s.qbo,
        json!({"method": "POST", "path": "/v3/company/*/invoice", "status": 429,
               "headers": {"Retry-After": "60"}, "times": 1,
               "body": {"Fault": {"Error": [{"Message": "message=ThrottleExceeded", "Detail": "ThrottleExceeded", "code": "3001"}], "type": "SERVICE"}}}),
    )
    .await?;
    let started = p.enroll(INVOICE, "DEAL", &deal, json!({})).await?;
    let callback = started["callbackId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let done = execution_in(&s, &callback, "SUCCESS").await?;
    assert_eq!(done["completed_by_callback"], true, "{done}");
    let first = done["attempts"][0]["body"].as_str().unwrap_or_default();
    let first: Value = serde_json::from_str(first)?;
    assert_eq!(
        first["outputFields"]["hs_execution_state"], "BLOCK",
        "{done}"
    );
    assert_eq!(first["outputFields"]["hs_expiration_duration"], "P1D");
    let invoice = p
        .qbo_read("Invoice", output(&done, "qboDocumentId"))
        .await?;
    assert_eq!(invoice["TotalAmt"], json!(319.99));
    assert_eq!(p.qbo_all("Invoice").await?.len(), 1);

    // The deferred work delivered again, and the call replayed: nothing more is made or
    // completed, and the replay gets the final answer.
    // (The worker records the completion after HubSpot took it: once its message is done.)
    s.settle().await?;
    let run_key = keys::action_runs::run(&p.portal.to_string().parse()?, &callback);
    let run = stored(&p, Table::ActionRuns, &run_key)
        .await?
        .expect("the run");
    assert_eq!(
        (run["deferred"].clone(), run["completed"].clone()),
        (json!(true), json!(true))
    );
    let sqs = aws_sdk_sqs::Client::new(&s.stack.aws.sdk_config().await);
    let body = json!({"action": "invoice", "request": done["request"]});
    sqs.send_message()
        .queue_url(&s.stack.manifest.queue("ActionQueue")?.url)
        .message_body(body.to_string())
        .send()
        .await?;
    s.settle().await?;
    let (status, replay) = answered_call(s.stack.url(INVOICE)?, &done["request"]).await?;
    assert_eq!(status, 200);
    assert_eq!(
        replay["outputFields"]["qboDocumentId"],
        output(&done, "qboDocumentId")
    );
    assert_eq!(replay["outputFields"]["hs_execution_state"], "SUCCESS");
    assert_eq!(p.qbo_all("Invoice").await?.len(), 1);
    let completions: u64 = s
        .counters(&s.hubspot)
        .await?
        .iter()
        .filter(|(k, _)| k.contains("/callbacks/"))
        .filter_map(|(_, c)| c["count"].as_u64())
        .sum();
    assert_eq!(completions, 1, "completed through the callback once");
    s.stop().await
}

#[tokio::test]
async fn definitions_publish_and_round_trip_and_options_fill_the_dropdowns() -> anyhow::Result<()> {
    let s = stack("actions-definitions").await?;
    let p = s.pair().await?;
    let c = catalogue(&p).await?;
    let published = local_stack::actions::publish_to_sandbox(&s.stack).await?;
    assert_eq!(published.len(), 6);
    let expected = local_stack::actions::rendered(|kind| {
        Ok(s.stack
            .url(local_stack::actions::function_of(kind))?
            .to_owned())
    })?;
    for definition in &expected {
        let name = &definition["labels"]["en"]["actionName"];
        let mut held = published
            .iter()
            .find(|d| &d["labels"]["en"]["actionName"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} was not published"));
        for key in ["id", "revisionId"] {
            held.as_object_mut().map(|o| o.remove(key));
        }
        assert_eq!(&held, definition, "{name} round-trips");
    }
    // Publishing again updates the six instead of adding six more.
    let again = local_stack::actions::publish_to_sandbox(&s.stack).await?;
    assert_eq!(again.len(), 6);
    assert!(again.iter().all(|d| d["revisionId"] == "2"), "{again:?}");
    // The workflow runner calls a published definition's URL.
    let invoice_definition = again
        .iter()
        .find(|d| d["labels"]["en"]["actionName"] == "Create QuickBooks invoice")
        .and_then(|d| d["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let deal = p
        .hubspot_sale(
            "deals",
            json!({"dealname": "Published"}),
            Some(&c.contact),
            &lines(&c),
        )
        .await?;
    let started = s
        .control(
            &s.hubspot,
            "/_sandbox/workflows/enroll",
            json!({"portal_id": p.portal, "definition_id": invoice_definition,
                   "object_type": "deals", "object_id": deal.parse::<u64>()?, "input_fields": {}}),
        )
        .await?;
    let run = s
        .finished_execution(started["callbackId"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(run["state"], "SUCCESS", "{run}");

    // The dropdowns, from the options URL the definitions name.
    p.qbo_create(
        "Customer",
        json!({"DisplayName": "Zed Corp", "PrimaryEmailAddr": {"Address": "z@zed.example"}}),
    )
    .await?;
    let url = format!("{}options", s.stack.url(INVOICE)?);
    let options = |field: &str, typed: Option<&str>| {
        let mut body = json!({"origin": {"portalId": p.portal, "actionDefinitionId": 1},
                              "inputFieldName": field,
                              "inputFields": {"qboAccount": {"type": "STATIC_VALUE", "value": p.realm}},
                              "fetchOptions": {}});
        if let Some(typed) = typed {
            body["fetchOptions"]["q"] = json!(typed);
        }
        let (url, field) = (url.clone(), field.to_owned());
        async move {
            let response = signed_call(&url, &body, now_ms()).send().await?;
            anyhow::ensure!(response.status() == 200, "{field}: {}", response.status());
            Ok::<Value, anyhow::Error>(response.json().await?)
        }
    };
    let labels = |answer: &Value| -> Vec<String> {
        answer["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["label"].as_str().map(str::to_owned))
            .collect()
    };
    let accounts = options("qboAccount", None).await?;
    assert_eq!(
        accounts["options"][0]["value"],
        p.realm.as_str(),
        "{accounts}"
    );
    let customers = options("qboCustomer", Some("Zed")).await?;
    assert_eq!(labels(&customers), ["Zed Corp"], "{customers}");
    assert_eq!(customers["options"][0]["description"], "z@zed.example");
    let items = options("qboItem", None).await?;
    let design = items["options"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["value"] == c.design_item.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(design["label"], "Design", "{items}");
    assert_eq!(design["description"], "SKU DES-1");
    let terms = options("qboTerm", None).await?;
    assert!(labels(&terms).contains(&"Net 30".to_owned()), "{terms}");
    let unknown = options("colour", None).await?;
    assert_eq!(unknown["errorCode"], "unknown_field");
    let unsigned = reqwest::Client::new().post(&url).body("{}").send().await?;
    assert_eq!(unsigned.status(), 401);
    s.stop().await
}
