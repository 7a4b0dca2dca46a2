//! Entity CRUD: envelope, Ids, SyncToken, sparse/full update, delete, void, deactivate.

mod harness;
use harness::{code, Sbx};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn create_returns_the_envelope_with_string_ids_and_metadata() {
    let sbx = Sbx::start().await;
    let (status, body) = sbx
        .post(
            "customer?minorversion=75",
            json!({"DisplayName": "Doe5, Jane"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let c = &body["Customer"];
    assert!(body["time"]
        .as_str()
        .is_some_and(|t| t.ends_with("-07:00") && t.contains('.')));
    assert!(c["Id"].is_string());
    assert_eq!(c["SyncToken"], "0");
    assert_eq!(c["domain"], "QBO");
    assert_eq!(c["sparse"], false);
    assert_eq!(c["Active"], true);
    assert_eq!(c["PrintOnCheckName"], "Doe5, Jane");
    assert!(c["MetaData"]["CreateTime"].is_string());
    assert_eq!(
        c["MetaData"]["CreateTime"],
        c["MetaData"]["LastUpdatedTime"]
    );
    let (status, read) = sbx
        .get(&format!("customer/{}", c["Id"].as_str().unwrap_or("")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["Customer"], *c);
}

#[tokio::test]
async fn stale_sync_token_is_5010_and_each_write_bumps_it() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Stale Sam").await;
    let id = c["Id"].as_str().unwrap_or_default();
    let (s, v1) = sbx
        .post(
            "customer",
            json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "one"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v1["Customer"]["SyncToken"], "1");
    let (s, stale) = sbx
        .post(
            "customer",
            json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "two"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&stale), "5010");
    assert_eq!(stale["Fault"]["type"], "ValidationFault");
    assert_eq!(stale["Fault"]["Error"][0]["Message"], "Stale Object Error");
    let (_, read) = sbx.get(&format!("customer/{id}")).await;
    assert_eq!(read["Customer"]["Notes"], "one");
}

#[tokio::test]
async fn sparse_update_merges_and_full_update_clears() {
    let sbx = Sbx::start().await;
    let c = sbx
        .create(
            "customer",
            "Customer",
            json!({"DisplayName": "Full Fred", "Notes": "keep?", "CompanyName": "Fred Co"}),
        )
        .await;
    let id = c["Id"].as_str().unwrap_or_default().to_string();
    let (_, sparse) = sbx
        .post(
            "customer",
            json!({"Id": id, "SyncToken": "0", "sparse": true, "Notes": "sparse"}),
        )
        .await;
    assert_eq!(sparse["Customer"]["CompanyName"], "Fred Co");
    let (_, full) = sbx
        .post(
            "customer",
            json!({"Id": id, "SyncToken": "1", "DisplayName": "Full Fred"}),
        )
        .await;
    assert_eq!(full["Customer"]["SyncToken"], "2");
    assert!(full["Customer"].get("CompanyName").is_none());
    assert!(full["Customer"].get("Notes").is_none());
}

#[tokio::test]
async fn sparse_update_replaces_lines_wholesale() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Lines Lu").await;
    let inv = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 2, 10.0)
        .await;
    let (s, updated) = sbx
        .post(
            "invoice",
            json!({"Id": inv["Id"], "SyncToken": "0", "sparse": true, "Line": [
                {"DetailType": "SalesItemLineDetail", "Amount": 5, "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 5}},
                {"DetailType": "SalesItemLineDetail", "Amount": 7.5, "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 3, "UnitPrice": 2.5}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    let inv = &updated["Invoice"];
    let lines = inv["Line"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 3, "two item lines + subtotal");
    assert_eq!(lines[2]["DetailType"], "SubTotalLineDetail");
    assert_eq!(inv["TotalAmt"], 12.5);
    assert_eq!(inv["Balance"], 12.5);
    assert_eq!(inv["CustomerRef"]["value"], c["Id"]);
}

#[tokio::test]
async fn delete_returns_a_stub_and_later_reads_are_610() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Del Dora").await;
    let inv = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 1, 10.0)
        .await;
    let (s, stale) = sbx
        .post(
            "invoice?operation=delete",
            json!({"Id": inv["Id"], "SyncToken": "9"}),
        )
        .await;
    assert_eq!(
        (s, code(&stale).as_str()),
        (StatusCode::BAD_REQUEST, "5010")
    );
    let (s, body) = sbx
        .post(
            "invoice?operation=delete",
            json!({"Id": inv["Id"], "SyncToken": "0"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body["Invoice"],
        json!({"domain": "QBO", "status": "Deleted", "Id": inv["Id"]})
    );
    let (s, gone) = sbx
        .get(&format!(
            "invoice/{}",
            inv["Id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!((s, code(&gone).as_str()), (StatusCode::BAD_REQUEST, "610"));
    // Name lists cannot be deleted, only deactivated.
    let (s, refused) = sbx
        .post(
            "customer?operation=delete",
            json!({"Id": c["Id"], "SyncToken": "0"}),
        )
        .await;
    assert_eq!(
        (s, code(&refused).as_str()),
        (StatusCode::BAD_REQUEST, "500")
    );
}

#[tokio::test]
async fn void_invoice_zeroes_amounts_and_bumps_sync_token() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Void Vic").await;
    let inv = sbx
        .invoice(c["Id"].as_str().unwrap_or_default(), 3, 10.0)
        .await;
    let (s, body) = sbx
        .post(
            "invoice?operation=void",
            json!({"Id": inv["Id"], "SyncToken": "0"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v = &body["Invoice"];
    assert_eq!(v["SyncToken"], "1");
    assert_eq!(v["TotalAmt"], 0);
    assert_eq!(v["Balance"], 0);
    assert_eq!(v["PrivateNote"], "Voided");
    assert_eq!(v["Line"][0]["Amount"], 0);
    // Estimates cannot be voided.
    let est = sbx
        .create("estimate", "Estimate", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 4}]}))
        .await;
    let (s, refused) = sbx
        .post(
            "estimate?operation=void",
            json!({"Id": est["Id"], "SyncToken": "0"}),
        )
        .await;
    assert_eq!(
        (s, code(&refused).as_str()),
        (StatusCode::BAD_REQUEST, "500")
    );
}

#[tokio::test]
async fn payments_and_sales_receipts_void_through_update_include_void() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Void Pay").await;
    let cid = c["Id"].as_str().unwrap_or_default().to_string();
    let inv = sbx.invoice(&cid, 1, 80.0).await;
    let pay = sbx
        .create("payment", "Payment", json!({"CustomerRef": {"value": cid}, "TotalAmt": 80, "Line": [{"Amount": 80, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]}))
        .await;
    let (s, voided) = sbx
        .post(
            "payment?operation=update&include=void",
            json!({"Id": pay["Id"], "SyncToken": "0", "sparse": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{voided}");
    assert_eq!(voided["Payment"]["TotalAmt"], 0);
    let (_, inv) = sbx
        .get(&format!(
            "invoice/{}",
            inv["Id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        inv["Invoice"]["Balance"], 80,
        "voiding the payment reopens the invoice"
    );
}

#[tokio::test]
async fn deactivated_customers_still_read_by_id() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Inactive Ida").await;
    let (s, body) = sbx
        .post(
            "customer",
            json!({"Id": c["Id"], "SyncToken": "0", "sparse": true, "Active": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["Customer"]["Active"], false);
    let (s, read) = sbx
        .get(&format!(
            "customer/{}",
            c["Id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(read["Customer"]["Active"], false);
    // …but cannot be used on new transactions.
    let (s, refused) = sbx
        .post("invoice", json!({"CustomerRef": {"value": c["Id"]}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1}]}))
        .await;
    assert_eq!(
        (s, code(&refused).as_str()),
        (StatusCode::BAD_REQUEST, "610")
    );
}

#[tokio::test]
async fn ids_paths_and_auth_errors() {
    let sbx = Sbx::start().await;
    let (s, bad) = sbx.get("customer/1.5").await;
    assert_eq!((s, code(&bad).as_str()), (StatusCode::BAD_REQUEST, "2030"));
    let (s, unknown) = sbx.get("customer/999").await;
    assert_eq!(
        (s, code(&unknown).as_str()),
        (StatusCode::BAD_REQUEST, "610")
    );
    let (s, unsupported) = sbx.post("widget", json!({})).await;
    assert_eq!(
        (s, code(&unsupported).as_str()),
        (StatusCode::BAD_REQUEST, "500")
    );
    let resp = sbx
        .http
        .get(sbx.api("customer/1"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("intuit_tid"));
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["fault"]["error"][0]["code"], "3200");
    // A token for one realm does not open another.
    let resp = sbx
        .http
        .get(format!(
            "{}/v3/company/{}/preferences",
            sbx.qbo.base_url,
            harness::GB
        ))
        .bearer_auth(&sbx.token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn company_info_and_preferences_read_and_update() {
    let sbx = Sbx::start().await;
    let (s, info) = sbx.get(&format!("companyinfo/{}", harness::US)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(info["CompanyInfo"]["Country"], "US");
    let (s, prefs) = sbx.get("preferences").await;
    assert_eq!(s, StatusCode::OK);
    let p = &prefs["Preferences"];
    assert_eq!(p["SalesFormsPrefs"]["CustomTxnNumbers"], false);
    let mut sales = p["SalesFormsPrefs"].clone();
    sales["CustomTxnNumbers"] = json!(true);
    let (s, updated) = sbx
        .post("preferences", json!({"Id": p["Id"], "SyncToken": p["SyncToken"], "sparse": true, "SalesFormsPrefs": sales}))
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["Preferences"]["SalesFormsPrefs"]["CustomTxnNumbers"],
        true
    );
    assert_eq!(updated["Preferences"]["SyncToken"], "1");
    assert!(
        updated["Preferences"]["CurrencyPrefs"].is_object(),
        "other sections kept"
    );
}

#[tokio::test]
async fn an_invoice_from_an_estimate_closes_it_and_both_link() {
    let sbx = Sbx::start().await;
    let c = sbx.customer("Estimate Eve").await;
    let est = sbx
        .create(
            "estimate",
            "Estimate",
            json!({"CustomerRef": {"value": c["Id"]},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 40,
                "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 40}}]}),
        )
        .await;
    assert_ne!(est["TxnStatus"], "Closed");
    let inv = sbx
        .create(
            "invoice",
            "Invoice",
            json!({"CustomerRef": {"value": c["Id"]},
            "LinkedTxn": [{"TxnId": est["Id"], "TxnType": "Estimate"}],
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 40,
                "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1, "UnitPrice": 40}}]}),
        )
        .await;
    assert_eq!(
        inv["LinkedTxn"],
        json!([{"TxnId": est["Id"], "TxnType": "Estimate"}])
    );
    let (_, read) = sbx
        .get(&format!(
            "estimate/{}",
            est["Id"].as_str().unwrap_or_default()
        ))
        .await;
    let closed = &read["Estimate"];
    assert_eq!(closed["TxnStatus"], "Closed");
    assert_eq!(
        closed["LinkedTxn"],
        json!([{"TxnId": inv["Id"], "TxnType": "Invoice"}])
    );
    assert_eq!(closed["SyncToken"], "1", "the estimate changed");
}
