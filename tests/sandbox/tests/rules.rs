//! Business rules: names, DocNumbers, amounts, payments, deposit accounts, purchases, tax codes,
//! closed books, required fields.

mod harness;
use harness::{code, Sbx, GB};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn display_names_are_unique_across_customers_vendors_employees_inactive_included() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Shared Name").await;
    let (s, dup_vendor) = sbx
        .post("vendor", json!({"DisplayName": "shared name"}))
        .await;
    assert_eq!(
        (s, code(&dup_vendor).as_str()),
        (StatusCode::BAD_REQUEST, "6240")
    );
    assert_eq!(
        dup_vendor["Fault"]["Error"][0]["Message"],
        "Duplicate Name Exists Error"
    );
    let (s, dup_employee) = sbx
        .post(
            "employee",
            json!({"GivenName": "Shared", "FamilyName": "Name"}),
        )
        .await;
    assert_eq!(
        (s, code(&dup_employee).as_str()),
        (StatusCode::BAD_REQUEST, "6240")
    );
    let _ = sbx
        .post(
            "customer",
            json!({"Id": c["Id"], "SyncToken": "0", "sparse": true, "Active": false}),
        )
        .await;
    let (s, still) = sbx
        .post("customer", json!({"DisplayName": "Shared Name"}))
        .await;
    assert_eq!(
        (s, code(&still).as_str()),
        (StatusCode::BAD_REQUEST, "6240"),
        "inactive names still count"
    );
    // Renaming to itself is fine.
    let (s, _) = sbx
        .post(
            "customer",
            json!({"Id": c["Id"], "SyncToken": "1", "sparse": true, "DisplayName": "Shared Name"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn item_names_are_unique_and_required_fields_are_2020() {
    let sbx = Sbx::start().await;
    let (s, dup) = sbx
        .post(
            "item",
            json!({"Name": "hours", "Type": "Service", "IncomeAccountRef": {"value": "6"}}),
        )
        .await;
    assert_eq!((s, code(&dup).as_str()), (StatusCode::BAD_REQUEST, "6240"));
    let (s, missing) = sbx
        .post("item", json!({"Name": "No Account", "Type": "Service"}))
        .await;
    assert_eq!(
        (s, code(&missing).as_str()),
        (StatusCode::BAD_REQUEST, "2020")
    );
    assert_eq!(missing["Fault"]["Error"][0]["element"], "IncomeAccountRef");
    let (s, bad_type) = sbx
        .post(
            "item",
            json!({"Name": "Odd", "Type": "Gizmo", "IncomeAccountRef": {"value": "6"}}),
        )
        .await;
    assert_eq!(
        (s, code(&bad_type).as_str()),
        (StatusCode::BAD_REQUEST, "2170")
    );
    let (s, bad_ref) = sbx
        .post(
            "item",
            json!({"Name": "Bad Ref", "Type": "Service", "IncomeAccountRef": {"value": "999"}}),
        )
        .await;
    assert_eq!(
        (s, code(&bad_ref).as_str()),
        (StatusCode::BAD_REQUEST, "2500")
    );
    let (s, no_name) = sbx.post("customer", json!({"Notes": "nameless"})).await;
    assert_eq!(
        (s, code(&no_name).as_str()),
        (StatusCode::BAD_REQUEST, "6080")
    );
    let (s, no_customer) = sbx
        .post(
            "invoice",
            json!({"Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]}),
        )
        .await;
    assert_eq!(
        (s, code(&no_customer).as_str()),
        (StatusCode::BAD_REQUEST, "2020")
    );
    let c = sbx.customer("Lineless").await;
    let (s, no_lines) = sbx
        .post("invoice", json!({"CustomerRef": {"value": c["Id"]}}))
        .await;
    assert_eq!(
        (s, code(&no_lines).as_str()),
        (StatusCode::BAD_REQUEST, "2020")
    );
}

#[tokio::test]
async fn doc_numbers_are_assigned_and_duplicates_rejected() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Doc Dan").await;
    let cid = c["Id"].as_str().unwrap_or_default().to_string();
    let a = sbx.invoice(&cid, 1, 1.0).await;
    let b = sbx.invoice(&cid, 1, 1.0).await;
    assert_eq!(a["DocNumber"], "1001");
    assert_eq!(b["DocNumber"], "1002");
    let line = json!([{"DetailType": "SalesItemLineDetail", "Amount": 1}]);
    let (s, dup) = sbx
        .post(
            "invoice",
            json!({"CustomerRef": {"value": cid}, "DocNumber": "1001", "Line": line}),
        )
        .await;
    assert_eq!((s, code(&dup).as_str()), (StatusCode::BAD_REQUEST, "6140"));
    assert!(dup["Fault"]["Error"][0]["Detail"]
        .as_str()
        .unwrap_or("")
        .contains("DocNumber=1001"));
    let (s, _) = sbx
        .post(
            "invoice?include=allowduplicatedocnum",
            json!({"CustomerRef": {"value": cid}, "DocNumber": "1001", "Line": line}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, long) = sbx
        .post(
            "invoice",
            json!({"CustomerRef": {"value": cid}, "DocNumber": "X".repeat(22), "Line": line}),
        )
        .await;
    assert_eq!((s, code(&long).as_str()), (StatusCode::BAD_REQUEST, "2010"));
}

#[tokio::test]
async fn custom_transaction_numbers_leave_doc_number_to_the_client() {
    let sbx = Sbx::start().await;
    sbx.control(
        Method::POST,
        "/_sandbox/realms",
        json!({"realm_id": "4242", "company": {"custom_txn_numbers": true}}),
    )
    .await;
    let mut sbx = sbx;
    sbx.use_realm("4242").await;
    let c = sbx.customer("Custom Cat").await;
    let inv = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 1, 3.0)
        .await;
    assert!(inv.get("DocNumber").is_none());
    let auto = sbx
        .create("invoice", "Invoice", json!({"CustomerRef": {"value": c["Id"]}, "AutoDocNumber": true, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]}))
        .await;
    assert_eq!(auto["DocNumber"], "1001");
}

#[tokio::test]
async fn line_amount_must_equal_qty_times_unit_price() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Math Max").await;
    let (s, bad) = sbx
        .post("invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 100,
               "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 3, "UnitPrice": 30}}]}))
        .await;
    assert_eq!((s, code(&bad).as_str()), (StatusCode::BAD_REQUEST, "6070"));
    assert_eq!(bad["Fault"]["Error"][0]["element"], "Line.Amount");
    // Exact decimals: 3 × 19.99 = 59.97 (no float drift); discount lines reduce the total.
    let inv = sbx
        .create("invoice", "Invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [
            {"DetailType": "SalesItemLineDetail", "Amount": 59.97, "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 3, "UnitPrice": 19.99}},
            {"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 0.5, "UnitPrice": 0.1}},
            {"DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": true, "DiscountPercent": 10}}]}))
        .await;
    assert_eq!(inv["Line"][1]["Amount"], 0.05);
    assert_eq!(inv["Line"][2]["Amount"], 6.0);
    assert_eq!(inv["TotalAmt"], 54.02);
    assert_eq!(inv["Balance"], 54.02);
}

#[tokio::test]
async fn payments_reduce_balances_and_link_both_ways() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Payer Pam").await;
    let cid = c["Id"].as_str().unwrap_or_default().to_string();
    let inv = sbx.invoice(&cid, 2, 50.0).await;
    let iid = inv["Id"].as_str().unwrap_or_default().to_string();
    let pay = sbx
        .create(
            "payment",
            "Payment",
            json!({"CustomerRef": {"value": cid}, "TotalAmt": 65,
                "Line": [{"Amount": 40, "LinkedTxn": [{"TxnId": iid, "TxnType": "Invoice"}]}]}),
        )
        .await;
    assert_eq!(pay["UnappliedAmt"], 25);
    assert_eq!(pay["Line"][0]["LinkedTxn"][0]["TxnId"], iid);
    let (_, inv) = sbx.get(&format!("invoice/{iid}")).await;
    assert_eq!(inv["Invoice"]["Balance"], 60);
    assert_eq!(
        inv["Invoice"]["SyncToken"], "1",
        "applying a payment is a write to the invoice"
    );
    assert_eq!(
        inv["Invoice"]["LinkedTxn"],
        json!([{"TxnId": pay["Id"], "TxnType": "Payment"}])
    );
    let (_, cust) = sbx.get(&format!("customer/{cid}")).await;
    assert_eq!(cust["Customer"]["Balance"], 60);
    // Over-applying is refused; paid invoices cannot be deleted.
    let (s, over) = sbx
        .post("payment", json!({"CustomerRef": {"value": cid}, "TotalAmt": 100, "Line": [{"Amount": 61, "LinkedTxn": [{"TxnId": iid, "TxnType": "Invoice"}]}]}))
        .await;
    assert_eq!((s, code(&over).as_str()), (StatusCode::BAD_REQUEST, "6000"));
    let (s, paid) = sbx
        .post(
            "invoice?operation=delete",
            json!({"Id": iid, "SyncToken": "1"}),
        )
        .await;
    assert_eq!((s, code(&paid).as_str()), (StatusCode::BAD_REQUEST, "6000"));
    // Deleting the payment restores the balance.
    let (s, _) = sbx
        .post(
            "payment?operation=delete",
            json!({"Id": pay["Id"], "SyncToken": "0"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, inv) = sbx.get(&format!("invoice/{iid}")).await;
    assert_eq!(inv["Invoice"]["Balance"], 100);
    assert_eq!(inv["Invoice"]["LinkedTxn"], json!([]));
}

#[tokio::test]
async fn receipts_need_a_deposit_account_and_purchases_need_account_lines() {
    let sbx = Sbx::start().await;
    let line = json!([{"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]);
    // A sales receipt's money goes to Undeposited Funds unless it names an account.
    let receipt = sbx
        .create("salesreceipt", "SalesReceipt", json!({"Line": line}))
        .await;
    assert_eq!(receipt["DepositToAccountRef"]["value"], "3", "{receipt}");
    // Payment methods are checked references: the seeded ones pass, others do not.
    let paid = sbx
        .create(
            "salesreceipt",
            "SalesReceipt",
            json!({"Line": line, "PaymentMethodRef": {"value": "3"}}),
        )
        .await;
    assert_eq!(paid["PaymentMethodRef"]["value"], "3");
    let (s, unknown) = sbx
        .post(
            "salesreceipt",
            json!({"Line": line, "PaymentMethodRef": {"value": "77"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{unknown}");
    let (s, methods) = sbx
        .get("query?query=select%20*%20from%20PaymentMethod%20where%20Type%20%3D%20%27CREDIT_CARD%27")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        methods["QueryResponse"]["PaymentMethod"][0]["Name"], "Credit Card",
        "{methods}"
    );
    let (s, twice) = sbx.post("paymentmethod", json!({"Name": "cash"})).await;
    assert_eq!(
        (s, code(&twice).as_str()),
        (StatusCode::BAD_REQUEST, "6240")
    );
    // A refund receipt must name the account it is paid from.
    let resource = "refundreceipt";
    let (s, missing) = sbx.post(resource, json!({"Line": line})).await;
    assert_eq!(
        (s, code(&missing).as_str()),
        (StatusCode::BAD_REQUEST, "2020"),
        "{resource}"
    );
    assert_eq!(
        missing["Fault"]["Error"][0]["element"],
        "DepositToAccountRef"
    );
    let (s, ok) = sbx
        .post(
            resource,
            json!({"Line": line, "DepositToAccountRef": {"value": "1"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ok}");
    let (s, no_type) = sbx
        .post(
            "purchase",
            json!({"AccountRef": {"value": "1"}, "Line": []}),
        )
        .await;
    assert_eq!(
        (s, code(&no_type).as_str()),
        (StatusCode::BAD_REQUEST, "2020")
    );
    let (s, no_account) = sbx
        .post("purchase", json!({"PaymentType": "Cash", "AccountRef": {"value": "1"},
               "Line": [{"DetailType": "AccountBasedExpenseLineDetail", "Amount": 12, "AccountBasedExpenseLineDetail": {}}]}))
        .await;
    assert_eq!(
        (s, code(&no_account).as_str()),
        (StatusCode::BAD_REQUEST, "2020")
    );
    let purchase = sbx
        .create("purchase", "Purchase", json!({"PaymentType": "CreditCard", "AccountRef": {"value": "9"},
               "Line": [{"DetailType": "AccountBasedExpenseLineDetail", "Amount": 12.5, "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "8"}}},
                        {"DetailType": "AccountBasedExpenseLineDetail", "Amount": 7.5, "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}}}]}))
        .await;
    assert_eq!(purchase["TotalAmt"], 20);
    assert_eq!(
        purchase["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["name"],
        "Meals and Entertainment"
    );
}

#[tokio::test]
async fn us_lines_take_tax_or_non_and_non_us_lines_need_a_real_tax_code() {
    let mut sbx = Sbx::start().await;
    let c = sbx.customer("Tax Tom").await;
    let (s, bad) = sbx
        .post("invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5,
               "SalesItemLineDetail": {"TaxCodeRef": {"value": "2"}}}]}))
        .await;
    assert_eq!((s, code(&bad).as_str()), (StatusCode::BAD_REQUEST, "6100"));
    let ok = sbx
        .create("invoice", "Invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5,
               "SalesItemLineDetail": {"TaxCodeRef": {"value": "TAX"}}}]}))
        .await;
    assert_eq!(
        ok["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]["value"],
        "TAX"
    );

    sbx.use_realm(GB).await;
    let c = sbx.customer("Tax Tilly").await;
    let (s, missing) = sbx
        .post("invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {}}]}))
        .await;
    assert_eq!(
        (s, code(&missing).as_str()),
        (StatusCode::BAD_REQUEST, "6000")
    );
    assert!(missing["Fault"]["Error"][0]["Detail"]
        .as_str()
        .unwrap_or("")
        .contains("VAT"));
    let (s, tax_word) = sbx
        .post("invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5,
               "SalesItemLineDetail": {"TaxCodeRef": {"value": "TAX"}}}]}))
        .await;
    assert_eq!(
        (s, code(&tax_word).as_str()),
        (StatusCode::BAD_REQUEST, "6000")
    );
    let ok = sbx
        .create("invoice", "Invoice", json!({"CustomerRef": {"value": c["Id"]}, "TxnTaxDetail": {"TotalTax": 1},
               "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {"TaxCodeRef": {"value": "2"}}}]}))
        .await;
    assert_eq!(ok["TotalAmt"], 6);
    assert_eq!(ok["GlobalTaxCalculation"], "TaxExcluded");
    assert_eq!(ok["CurrencyRef"]["value"], "GBP");
}

#[tokio::test]
async fn closed_books_refuse_old_transactions_and_custom_fields_follow_preferences() {
    let mut sbx = Sbx::start().await;
    sbx.control(
        Method::POST,
        "/_sandbox/realms",
        json!({"realm_id": "777", "company": {"book_close_date": "2025-12-31", "custom_fields": ["Crew #", "PO ref", "Region", "Ignored 4th"]}}),
    )
    .await;
    sbx.use_realm("777").await;
    let c = sbx.customer("Closed Cleo").await;
    let line = json!([{"DetailType": "SalesItemLineDetail", "Amount": 5}]);
    let (s, closed) = sbx
        .post(
            "invoice",
            json!({"CustomerRef": {"value": c["Id"]}, "TxnDate": "2025-06-01", "Line": line}),
        )
        .await;
    assert_eq!(
        (s, code(&closed).as_str()),
        (StatusCode::BAD_REQUEST, "6210")
    );
    let inv = sbx
        .create("invoice", "Invoice", json!({"CustomerRef": {"value": c["Id"]}, "TxnDate": "2026-01-02", "Line": line,
                "CustomField": [{"DefinitionId": "2", "StringValue": "PO-9", "Type": "StringType"}]}))
        .await;
    let fields = inv["CustomField"].as_array().cloned().unwrap_or_default();
    assert_eq!(fields.len(), 3, "only the first three string fields");
    assert_eq!(
        fields[1],
        json!({"DefinitionId": "2", "Name": "PO ref", "Type": "StringType", "StringValue": "PO-9"})
    );
    assert!(fields[0].get("StringValue").is_none());
}
